namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>Configuration section <c>Provisioner:LocalSandbox</c>.</summary>
public sealed class LocalSandboxOptions
{
    public const string Section = "Provisioner:LocalSandbox";

    public string BwrapPath { get; set; } = "/usr/bin/bwrap";
    /// <summary>util-linux setpriv: gives the launching shell the parent-death signal bubblewrap's own --die-with-parent sets too late (see SandboxCommandBuilder.DieWithParent).</summary>
    public string SetprivPath { get; set; } = "/usr/bin/setpriv";
    /// <summary>
    /// Per-job directories live here: <c>{WorkRoot}/{jobId}/workspace</c> and <c>…/control</c>. Unset: a
    /// folder of this installation's own (<see cref="LocalSandbox.WorkRoot.DefaultFor"/>). It must belong to
    /// this user and be writable by nobody else, and two installations cannot share one (a marker names its owner).
    /// </summary>
    public string? WorkRoot { get; set; }
    /// <summary>The built runner agent, bound read-only at /opt/eci/agent.</summary>
    public string AgentDirectory { get; set; } = Path.Combine(AppContext.BaseDirectory, "runner-agent");
    /// <summary>The dotnet muxer that runs the managed agent; empty means the one running this process.</summary>
    public string? DotnetPath { get; set; }
    /// <summary>
    /// Run the managed agent on the shared runtime even where the native one was built (a comparison,
    /// or a base root whose C library cannot load it). By default the native agent runs when it is there.
    /// </summary>
    public bool ManagedAgent { get; set; }

    /// <summary>The dotnet host for the managed agent, or null when the native agent runs on its own.</summary>
    public string? AgentHost() =>
        !ManagedAgent && File.Exists(Path.Combine(AgentDirectory, SandboxCommandBuilder.NativeAgent)) ? null : ResolveDotnet(DotnetPath);
    /// <summary>
    /// Job cgroups go in <c>{CgroupName}/{installation}</c> below the provisioner's own cgroup, in every
    /// cgroup tree. Only this installation's part is ever swept, so installations on one machine can
    /// share the name; a job cgroup right under it (an older version's) is reported, never killed.
    /// </summary>
    public string CgroupName { get; set; } = "ephemeralci";

    /// <summary>
    /// Network mode <c>egress</c>: each running job takes a /30 of this IPv4 range for its veth pair
    /// (the job's address is masqueraded on the way out). Two installations on one machine are best given
    /// distinct pools for their own routing; with the default one they start at different points of it
    /// and skip addresses the host already has. Jobs can never reach any address of this range (nor other private ranges).
    /// </summary>
    public string EgressAddressPool { get; set; } = "10.213.0.0/16";

    /// <summary>
    /// Network mode <c>egress</c>: resolvers the job may query on port 53 even though they sit in a
    /// private range (a VPC or office resolver usually does). Unset = the nameservers of the host's
    /// /etc/resolv.conf (which the sandbox sees), loopback ones excluded: the job's loopback is its own.
    /// </summary>
    public List<string>? EgressDnsServers { get; set; }

    /// <summary>The dotnet host running this process (we are usually started as <c>dotnet X.dll</c>), else the usual install.</summary>
    public static string ResolveDotnet(string? configured)
    {
        if (!string.IsNullOrWhiteSpace(configured)) return configured;
        foreach (var candidate in new[]
                 {
                     Environment.GetEnvironmentVariable("DOTNET_HOST_PATH"),
                     Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : null,
                     Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } root ? Path.Combine(root, "dotnet") : null,
                     "/usr/share/dotnet/dotnet",
                     "/usr/lib/dotnet/dotnet",
                 })
        {
            if (string.IsNullOrEmpty(candidate) || !File.Exists(candidate)) continue;
            // /usr/bin/dotnet is a symlink; the real muxer tells us which directory holds the runtimes.
            return new FileInfo(candidate).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(candidate);
        }
        return "/usr/share/dotnet/dotnet";
    }
}
