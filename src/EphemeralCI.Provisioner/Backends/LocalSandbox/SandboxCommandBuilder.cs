using EphemeralCI.Contracts.Runner;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>The host paths of one job's sandbox.</summary>
public sealed record SandboxLayout(
    Guid JobId,
    string WorkspaceDirectory,
    string ControlDirectory,
    string AgentDirectory,
    /// <summary>The dotnet host that runs the managed agent; null runs the native (ahead-of-time compiled) agent on its own.</summary>
    string? DotnetPath,
    /// <summary>Null: the host's /usr read-only under an empty tmpfs root. Else the job's own overlay of a base root.</summary>
    IReadOnlyList<RootEntry>? Root = null,
    /// <summary>The template's network mode; <c>egress</c> keeps the network namespace the sandbox is started in (the job's own, see EgressNetwork).</summary>
    string Network = SandboxCommandBuilder.ControlPlaneNetwork);

/// <summary>
/// Builds the bubblewrap argument list for one job's sandbox. Pure (the filesystem is asked only
/// through <c>exists</c>), so every isolation flag is checked by unit tests.
/// </summary>
public static class SandboxCommandBuilder
{
    public const int SandboxUid = 1000;
    public const int SandboxGid = 1000;
    public const string WorkspacePath = "/workspace";
    public const string AgentPath = "/opt/eci/agent";
    public const string ControlPath = "/run/eci";
    public const string IntakeSocketPath = ControlPath + "/intake.sock";
    public const string SecretsSocketName = "secrets.sock";
    public const string SecretsSocketPath = ControlPath + "/" + SecretsSocketName;
    public const string CacheSocketName = "cache.sock";
    public const string CacheSocketPath = ControlPath + "/" + CacheSocketName;
    public const string AgentAssembly = "EphemeralCI.RunnerAgent.dll";
    /// <summary>The same agent compiled ahead of time: no runtime to bind in, no JIT at a job's start.</summary>
    public const string NativeAgent = "EphemeralCI.RunnerAgent";
    public const string SandboxPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    public const string NoNetwork = "none";
    public const string ControlPlaneNetwork = "control-plane";
    public const string EgressNetwork = "egress";

    /// <summary>Merged-/usr top-level links; each is created only if the host has it as a link into /usr.</summary>
    public static readonly IReadOnlyList<string> UsrLinks = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

    /// <summary>
    /// The only host files of /etc a job sees: users and groups (bash, id), name resolution, TLS
    /// roots, time zone, the dynamic linker cache and Debian's alternatives. Never shadow files.
    /// </summary>
    public static readonly IReadOnlyList<string> EtcFiles =
    [
        "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/host.conf", "/etc/resolv.conf",
        "/etc/gai.conf", "/etc/ssl", "/etc/ca-certificates", "/etc/localtime", "/etc/ld.so.cache", "/etc/alternatives",
    ];

    /// <param name="exists">Whether a host path exists (files, directories or links).</param>
    /// <param name="linkTarget">The target of a host symlink, or null if the path is not a link.</param>
    public static IReadOnlyList<string> Build(
        SandboxLayout layout,
        Func<string, bool> exists,
        Func<string, string?> linkTarget,
        IReadOnlyList<string>? command = null)
    {
        var args = new List<string>
        {
            // Every namespace; --unshare-user on its own too so a kernel without user namespaces
            // fails loudly instead of silently running with the host's user (the "-try" in --unshare-all).
            "--unshare-all", "--unshare-user",
            "--uid", SandboxUid.ToString(), "--gid", SandboxGid.ToString(),
            "--hostname", "eci-runner",
            "--die-with-parent", "--new-session",
            "--cap-drop", "ALL",
            "--clearenv",
            // A fresh, empty root: only what is bound below exists.
            "--tmpfs", "/",
        };
        // none and control-plane: a new, empty network namespace (loopback only). egress: the job's
        // own namespace, prepared by the provisioner and entered before bubblewrap starts.
        if (layout.Network == EgressNetwork) args.Insert(args.IndexOf("--unshare-user") + 1, "--share-net");
        if (layout.Root is { } root)
        {
            // The job's private overlay of the template's base root: writable, and gone with the job.
            foreach (var entry in root)
            {
                if (entry.LinkTarget is { } target) args.AddRange(["--symlink", target, "/" + entry.Name]);
                else args.AddRange(["--bind", entry.HostDirectory!, "/" + entry.Name]);
            }
        }
        else
        {
            args.AddRange(["--ro-bind", "/usr", "/usr"]);
            foreach (var name in UsrLinks)
            {
                var target = linkTarget("/" + name);
                if (target is not null && target.TrimStart('/').StartsWith("usr/", StringComparison.Ordinal))
                {
                    args.AddRange(["--symlink", target.TrimStart('/'), "/" + name]);
                }
            }
            args.AddRange(["--dir", "/etc"]);
            foreach (var path in EtcFiles.Where(exists))
            {
                args.AddRange(["--ro-bind", path, path]);
            }
        }
        args.AddRange(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);

        // A dotnet outside /usr (e.g. ~/.dotnet) must be visible at the same path to run the managed
        // agent. A base root has its own /usr, without our dotnet: bind it in at the same path too.
        if (layout.DotnetPath is not null)
        {
            var dotnetRoot = Path.GetDirectoryName(layout.DotnetPath)!;
            if (layout.Root is not null || !dotnetRoot.StartsWith("/usr/", StringComparison.Ordinal))
            {
                args.AddRange(["--ro-bind", dotnetRoot, dotnetRoot]);
            }
        }

        args.AddRange(["--bind", layout.WorkspaceDirectory, WorkspacePath]);
        args.AddRange(["--ro-bind", layout.AgentDirectory, AgentPath]);
        // Read-only: the agent can connect to the socket but not replace it.
        args.AddRange(["--ro-bind", layout.ControlDirectory, ControlPath]);
        // The tmpfs root holds only mount points and links; read-only so nothing lands outside the overlays and /tmp.
        args.AddRange(["--remount-ro", "/"]);
        args.AddRange(["--chdir", WorkspacePath]);

        foreach (var (key, value) in Environment(layout))
        {
            args.AddRange(["--setenv", key, value]);
        }

        args.Add("--");
        args.AddRange(command ?? AgentCommand(layout));
        return args;
    }

    public static IReadOnlyList<string> AgentCommand(SandboxLayout layout) =>
        layout.DotnetPath is null ? [$"{AgentPath}/{NativeAgent}"] : [layout.DotnetPath, $"{AgentPath}/{AgentAssembly}"];

    /// <summary>
    /// The argv (after /bin/sh) of a shell that writes its own pid into each cgroup.procs file, then
    /// becomes bubblewrap (exec keeps the pid), so the sandbox and all it starts are in the job's cgroup from the first instruction.
    /// </summary>
    /// <param name="enterFirst">A command that runs bubblewrap in another namespace (nsenter --net=… --), or null.</param>
    public static IReadOnlyList<string> JoinCgroupThenExec(IReadOnlyList<string> cgroupProcsFiles, string bwrapPath, IReadOnlyList<string> bwrapArgs, IReadOnlyList<string>? enterFirst = null)
    {
        foreach (var file in cgroupProcsFiles)
        {
            if (file.Contains('\'') || !file.StartsWith('/')) throw new ArgumentException($"unexpected cgroup path '{file}'", nameof(cgroupProcsFiles));
        }
        // 125: the cgroup could not be joined; the job must not run unconfined.
        var script = string.Concat(cgroupProcsFiles.Select(f => $"echo $$ > '{f}' || exit 125; ")) + "exec \"$@\"";
        return ["-c", script, "eci-sandbox", .. enterFirst ?? [], bwrapPath, .. bwrapArgs];
    }

    /// <summary>The agent's whole environment (bubblewrap clears the rest). The job token is not here: it comes on stdin.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Environment(SandboxLayout layout) =>
    [
        new("PATH", SandboxPath),
        new("HOME", "/tmp"),
        new("LANG", "C.UTF-8"),
        new("CI", "true"),
        new(RunnerEnvironment.JobId, layout.JobId.ToString()),
        new(RunnerEnvironment.Workspace, WorkspacePath),
        new(RunnerEnvironment.IntakeSocket, IntakeSocketPath),
        new(RunnerEnvironment.SecretsSocket, SecretsSocketPath),
        new(RunnerEnvironment.CacheSocket, CacheSocketPath),
        new("DOTNET_CLI_TELEMETRY_OPTOUT", "1"),
        new("DOTNET_NOLOGO", "1"),
    ];
}
