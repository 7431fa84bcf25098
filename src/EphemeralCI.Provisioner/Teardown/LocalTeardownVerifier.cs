using System.Diagnostics;
using System.Globalization;
using System.Runtime.Versioning;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using EphemeralCI.Provisioner.Backends.LocalSandbox.Network;
using EphemeralCI.Provisioner.Ownership;

namespace EphemeralCI.Provisioner.Teardown;

/// <summary>
/// Looks at the machine itself for anything of a destroyed sandbox: processes in its cgroup or
/// carrying its ids (command line, environment), its cgroup directories, its job, workspace and
/// control folders, its egress network (namespace, veth, nftables table) and overlay mounts. It shares
/// only the naming rules with <see cref="LocalSandboxBackend"/>, never its bookkeeping.
/// A runner made by this process can only have processes this process outlived the start of: for it
/// only processes started since this one are read in full (a look at every process's stat costs a
/// fraction of reading each one's cgroup, command line and environment — the machine's own daemons
/// are most of them). A runner made before (a previous process, adopted) gets every process read.
/// </summary>
[UnsupportedOSPlatform("windows")]
public sealed class LocalTeardownVerifier(LocalSandboxBackend backend, Installation installation) : ITeardownVerifier
{
    private const int MaxListed = 5;
    // Machine-wide looks, shared by the checks of runners torn down at about the same time (see FreshSnapshot).
    private readonly FreshSnapshot<IReadOnlyList<ProcessView>> _processesSinceStart = new(_ => Task.FromResult(ScanProcesses(ProcessTree.SelfStartTime)));
    private readonly FreshSnapshot<IReadOnlyList<ProcessView>> _allProcesses = new(_ => Task.FromResult(ScanProcesses(startedSince: 0)));
    private static readonly DateTimeOffset SelfStartedAt = Process.GetCurrentProcess().StartTime.ToUniversalTime();
    private readonly FreshSnapshot<string?> _nftTables = new(NftTables.ListAsync);

    public string Backend => LocalSandboxBackend.BackendName;

    /// <summary>A job on a warm sandbox is known on the machine by the sandbox's id; the alias is gone after teardown.</summary>
    public RunnerRef Target(RunnerRef runner) => runner with { JobId = backend.SandboxIdOf(runner.JobId) };

    public async Task<IReadOnlyList<TeardownCheck>> VerifyAsync(RunnerRef target, CancellationToken ct)
    {
        // The runner's cleanup is over: any look taken from now on may serve this check.
        var notBefore = Stopwatch.GetTimestamp();
        var id = target.JobId;
        var jobDirectory = Path.Combine(backend.WorkRootDirectory, id.ToString());
        var checks = new List<TeardownCheck>
        {
            Processes(target, await ProcessesOf(target).GetAsync(notBefore, ct)),
            Cgroups(id),
            Gone("workspace", Path.Combine(jobDirectory, "workspace")),
            Gone("control", Path.Combine(jobDirectory, "control")),
            Gone("job-directory", jobDirectory),
            Mounts(id, jobDirectory),
        };
        checks.AddRange(await NetworkAsync(id, notBefore, ct));
        return checks;
    }

    private FreshSnapshot<IReadOnlyList<ProcessView>> ProcessesOf(RunnerRef target) =>
        target.CreatedAt >= SelfStartedAt ? _processesSinceStart : _allProcesses;

    /// <summary>No live process in the job's cgroup (any tree) or with the job's, sandbox's or runner's id in its command line or environment.</summary>
    private static TeardownCheck Processes(RunnerRef target, IReadOnlyList<ProcessView> processes)
    {
        string[] markers = [target.JobId.ToString(), target.JobId.ToString("N"), target.RunnerId];
        var cgroupMarker = "/" + target.JobId;
        var found = new List<string>();
        foreach (var p in processes)
        {
            var why = p.Cgroups.Contains(cgroupMarker, StringComparison.Ordinal) ? "in its cgroup"
                : Carries(p.CommandLine, markers) ? "its id in the command line"
                : Carries(p.Environment, markers) ? "its id in the environment"
                : null;
            if (why is not null) found.Add($"pid {p.Pid} ({p.Name}, {why})");
        }
        return new TeardownCheck("processes", found.Count == 0, "/proc", Describe(found));
    }

    /// <summary>Every live process but this one started at or after <paramref name="startedSince"/> (clock ticks after boot),
    /// with what identifies a job's: cgroups, command line, environment.</summary>
    private static IReadOnlyList<ProcessView> ScanProcesses(ulong startedSince)
    {
        var self = Environment.ProcessId;
        var all = new List<ProcessView>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid == self) continue;
            // A process the kernel is already ending is not a leftover: it runs nothing more, and on a loaded machine a
            // killed sandbox's bwrap can take a moment to finish exiting after its cgroup is gone (a CI run's check
            // warned of one that its retry then found gone).
            if (ProcessTree.Stat(pid) is not { State: not 'Z' and not 'X', Exiting: false } stat || (stat.StartTime != 0 && stat.StartTime < startedSince)) continue;
            all.Add(new ProcessView(pid, Name(dir), ProcessTree.Cgroups(pid), Read($"{dir}/cmdline"), Read($"{dir}/environ")));
        }
        return all;
    }

    private sealed record ProcessView(int Pid, string Name, string Cgroups, string CommandLine, string Environment);

    private TeardownCheck Cgroups(Guid id)
    {
        IReadOnlyList<string> directories;
        try
        {
            directories = backend.JobCgroups.Layout.JobDirectories(id);
        }
        catch (InvalidOperationException)
        {
            // No cgroups on this machine: the backend could not have made one.
            return new TeardownCheck("cgroup", true, "no job cgroups on this machine");
        }
        var left = directories.Where(Directory.Exists).ToList();
        return new TeardownCheck("cgroup", left.Count == 0, string.Join(", ", directories), Describe(left));
    }

    private static TeardownCheck Gone(string name, string path) =>
        new(name, !Path.Exists(path), path, Path.Exists(path) ? $"{path} exists" : null);

    /// <summary>Nothing mounted below the job's folder, and no overlay whose source names the job.</summary>
    private static TeardownCheck Mounts(Guid id, string jobDirectory)
    {
        var prefix = jobDirectory.TrimEnd('/') + "/";
        var source = $"eci-{id}";
        var found = new List<string>();
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var fields = line.Split(' ');
            if (fields.Length < 5) continue;
            var mountPoint = fields[4].Replace("\\040", " ", StringComparison.Ordinal);
            var dash = Array.IndexOf(fields, "-");
            var mountSource = dash >= 0 && dash + 2 < fields.Length ? fields[dash + 2] : "";
            if (mountPoint.StartsWith(prefix, StringComparison.Ordinal) || mountPoint == jobDirectory || mountSource == source)
            {
                found.Add($"{mountPoint} ({mountSource})");
            }
        }
        return new TeardownCheck("overlay", found.Count == 0, "/proc/self/mountinfo", Describe(found));
    }

    /// <summary>The egress network's namespace, host-side veth and nftables table, by the names the backend gives a job.</summary>
    private async Task<IReadOnlyList<TeardownCheck>> NetworkAsync(Guid id, long notBefore, CancellationToken ct)
    {
        var names = JobNetworkNames.For(installation.Id.ToString("N"), id);
        var netns = Path.Combine(EgressNetwork.NetnsDirectory, names.Namespace);
        var veth = Path.Combine("/sys/class/net", names.HostInterface);
        var checks = new List<TeardownCheck>
        {
            Gone("netns", netns),
            Gone("veth", veth),
        };
        // Listing nftables needs root and the nft tool; without them no table can have been made either.
        if (Environment.IsPrivilegedProcess && File.Exists(EgressNetwork.NftPath))
        {
            var tables = await _nftTables.GetAsync(notBefore, ct);
            var present = tables is not null && NftTables.Names(tables, "inet").Contains(names.Table);
            checks.Add(new TeardownCheck("nftables", tables is not null && !present, $"inet {names.Table}",
                tables is null ? "nft list tables failed" : present ? $"table inet {names.Table} exists" : null));
        }
        return checks;
    }

    private static bool Carries(string text, string[] markers) => markers.Any(m => text.Contains(m, StringComparison.Ordinal));

    private static string Name(string procDir) => Read($"{procDir}/comm").Trim();

    private static string Read(string path)
    {
        try { return File.ReadAllText(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return ""; }
    }

    private static string? Describe(List<string> found) =>
        found.Count == 0 ? null : string.Join(", ", found.Take(MaxListed)) + (found.Count > MaxListed ? $" and {found.Count - MaxListed} more" : "");
}
