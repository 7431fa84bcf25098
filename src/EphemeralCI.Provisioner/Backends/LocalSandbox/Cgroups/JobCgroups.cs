using System.Globalization;
using EphemeralCI.Contracts.Jobs;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox.Cgroups;

/// <summary>
/// One cgroup per job (one directory per tree in hybrid mode): limits from the template, a kill of
/// the whole group that no double fork or setsid escapes, the reason when a limit was hit, and
/// removal at teardown.
/// </summary>
public sealed class JobCgroups(CgroupLayout layout, ILogger logger)
{
    private const int CpuPeriodMicros = 100_000;
    private static readonly TimeSpan EmptyTimeout = TimeSpan.FromSeconds(10);

    public CgroupLayout Layout => layout;

    /// <summary>
    /// Detects the layout of this machine and prepares the parents; throws <see cref="CgroupUnavailableException"/> with the reason.
    /// Job cgroups go in <c>{sharedName}/{installationTag}</c> below this process's cgroup: installations
    /// that share a host (and so the shared name) each have a parent of their own, and sweep only that.
    /// </summary>
    public static JobCgroups Open(string sharedName, string installationTag, ILogger logger)
    {
        string mountInfo, self;
        try
        {
            mountInfo = File.ReadAllText("/proc/self/mountinfo");
            self = File.ReadAllText("/proc/self/cgroup");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CgroupUnavailableException($"cannot read this process's cgroups: {ex.Message}");
        }
        var parentName = sharedName + "/" + installationTag;
        var layout = CgroupLayout.Detect(mountInfo, self, parentName, dir => ReadOrNull(Path.Combine(dir, "cgroup.controllers")));
        var cgroups = new JobCgroups(layout, logger);
        cgroups.PrepareParents(parentName);
        return cgroups;
    }

    private void PrepareParents(string parentName)
    {
        try
        {
            foreach (var parent in layout.Parents) Directory.CreateDirectory(parent);
            if (layout.Mode == CgroupMode.Unified) EnableControllers(parentName);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CgroupUnavailableException($"cannot create job cgroups under {layout.UnifiedParent}: {ex.Message} (run as root, or in a cgroup delegated to this user)");
        }
    }

    /// <summary>
    /// cgroup v2 lets a cgroup hand controllers to its children only while it holds no process
    /// itself ("no internal processes"): if ours does, this process moves into a leaf of its own first.
    /// Then every level down to the job parent hands them on.
    /// </summary>
    private void EnableControllers(string parentName)
    {
        var own = layout.UnifiedParent[..^(parentName.Length + 1)];
        var enable = string.Join(' ', CgroupLayout.RequiredControllers.Select(c => "+" + c));
        try
        {
            File.WriteAllText(Path.Combine(own, "cgroup.subtree_control"), enable);
        }
        catch (IOException)
        {
            var leaf = Path.Combine(own, "provisioner");
            Directory.CreateDirectory(leaf);
            File.WriteAllText(Path.Combine(leaf, "cgroup.procs"), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
            File.WriteAllText(Path.Combine(own, "cgroup.subtree_control"), enable);
        }
        var level = own;
        foreach (var segment in parentName.Split('/'))
        {
            level = Path.Combine(level, segment);
            File.WriteAllText(Path.Combine(level, "cgroup.subtree_control"), enable);
        }
    }

    /// <summary>Creates the job's cgroup with the template's limits. Returns the cgroup.procs files the sandbox must join before it runs anything.</summary>
    public IReadOnlyList<string> Create(Guid jobId, RunnerResources resources)
    {
        Remove(jobId); // a crashed earlier attempt's group is not this job's
        foreach (var dir in layout.JobDirectories(jobId)) Directory.CreateDirectory(dir);

        var memoryBytes = (long)resources.MemoryMiB * 1024 * 1024;
        var cpuQuota = (long)resources.CpuMillis * CpuPeriodMicros / 1000;
        var memory = layout.MemoryDirectory(jobId);
        var pids = layout.PidsDirectory(jobId);
        var cpu = layout.CpuDirectory(jobId);
        Write(pids, "pids.max", resources.MaxProcesses.ToString(CultureInfo.InvariantCulture));
        if (layout.Mode == CgroupMode.Unified)
        {
            Write(memory, "memory.max", memoryBytes.ToString(CultureInfo.InvariantCulture));
            TryWrite(memory, "memory.swap.max", "0");
            // An OOM kills the whole group, agent included, so the job cannot carry on half-killed
            // and the provisioner is the one that reports why.
            Write(memory, "memory.oom.group", "1");
            Write(cpu, "cpu.max", $"{cpuQuota} {CpuPeriodMicros}");
        }
        else
        {
            Write(memory, "memory.limit_in_bytes", memoryBytes.ToString(CultureInfo.InvariantCulture));
            TryWrite(memory, "memory.memsw.limit_in_bytes", memoryBytes.ToString(CultureInfo.InvariantCulture));
            // v1 has no oom.group: the kernel kills one process (counted in memory.oom_control's
            // oom_kill) and the supervisor, polling it, kills the rest with the reason. Not
            // oom_kill_disable: with it, a charge made in a system call (a pipe buffer) fails with
            // ENOMEM instead of waiting, and the job fails without any trace of the limit.
            Write(cpu, "cpu.cfs_period_us", CpuPeriodMicros.ToString(CultureInfo.InvariantCulture));
            Write(cpu, "cpu.cfs_quota_us", cpuQuota.ToString(CultureInfo.InvariantCulture));
        }
        return layout.JobDirectories(jobId).Select(d => Path.Combine(d, "cgroup.procs")).ToList();
    }

    /// <summary>Whether the job's cgroup exists at all.</summary>
    public bool Exists(Guid jobId) => Directory.Exists(layout.UnifiedDirectory(jobId));

    /// <summary>Live process ids in the job's cgroup (any tree).</summary>
    public IReadOnlyList<int> Processes(Guid jobId)
    {
        var pids = new HashSet<int>();
        foreach (var dir in layout.JobDirectories(jobId))
        {
            foreach (var line in (ReadOrNull(Path.Combine(dir, "cgroup.procs")) ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                if (int.TryParse(line, CultureInfo.InvariantCulture, out var pid)) pids.Add(pid);
            }
        }
        return pids.ToList();
    }

    /// <summary>SIGKILLs every process of the job at once (cgroup.kill) and waits until none is left.</summary>
    public async Task KillAsync(Guid jobId, CancellationToken ct)
    {
        var unified = layout.UnifiedDirectory(jobId);
        if (!Directory.Exists(unified)) return;
        var kill = Path.Combine(unified, "cgroup.kill");
        var hasKill = File.Exists(kill);
        var deadline = DateTime.UtcNow + EmptyTimeout;
        while (Processes(jobId).Count > 0)
        {
            // Repeated: a process that was mid-fork when the kill landed may have left a child.
            if (hasKill) TryWrite(unified, "cgroup.kill", "1");
            else foreach (var pid in Processes(jobId)) ProcessTree.Kill(pid); // kernels before 5.14
            if (DateTime.UtcNow > deadline) throw new InvalidOperationException($"cgroup of job {jobId} still has processes {EmptyTimeout} after SIGKILL");
            await Task.Delay(10, ct);
        }
    }

    /// <summary>Removes the job's cgroup directories (they must be empty: kill first). Idempotent.</summary>
    public void Remove(Guid jobId)
    {
        foreach (var dir in layout.JobDirectories(jobId))
        {
            for (var attempt = 0; Directory.Exists(dir); attempt++)
            {
                try
                {
                    // rmdir, never a recursive delete: cgroup files cannot be unlinked.
                    Directory.Delete(dir, recursive: false);
                }
                catch (IOException) when (attempt < 100)
                {
                    // EBUSY while the last process's exit is still being accounted.
                    Thread.Sleep(10);
                }
            }
        }
    }

    /// <summary>On shutdown: removes our parents if no job cgroup is left in them, and the shared level
    /// above if no other installation uses it, so nothing of ours keeps the cgroup we were started in from being removed.</summary>
    public void RemoveParentsIfEmpty()
    {
        foreach (var dir in layout.Parents.Concat(layout.Parents.Select(p => Path.GetDirectoryName(p)!)))
        {
            try { Directory.Delete(dir, recursive: false); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        }
    }

    /// <summary>Job cgroups under our parents, for the reconciler.</summary>
    public IReadOnlyCollection<Guid> Existing() =>
        layout.Parents.Where(Directory.Exists)
            .SelectMany(Directory.EnumerateDirectories)
            .Select(d => Guid.TryParse(Path.GetFileName(d), out var id) ? id : Guid.Empty)
            .Where(id => id != Guid.Empty)
            .ToHashSet();

    /// <summary>
    /// Job cgroups right under the shared level, beside the installations' parents: what an
    /// EphemeralCI from before installation ids left, or another tool. Nobody's we know: reported, never killed.
    /// </summary>
    public IReadOnlyList<string> OfUnknownOwner() =>
        layout.Parents.Select(p => Path.GetDirectoryName(p)!).Distinct(StringComparer.Ordinal).Where(Directory.Exists)
            .SelectMany(Directory.EnumerateDirectories)
            .Where(d => Guid.TryParse(Path.GetFileName(d), out _))
            .ToList();

    /// <summary>The limit the job hit (memory or process count), or null. Read while the group still exists.</summary>
    public string? LimitHit(Guid jobId, RunnerResources resources)
    {
        var memory = layout.MemoryDirectory(jobId);
        if (layout.Mode == CgroupMode.Unified)
        {
            var events = ParseKeyValues(ReadOrNull(Path.Combine(memory, "memory.events")));
            if (events.GetValueOrDefault("oom_kill") > 0 || events.GetValueOrDefault("oom_group_kill") > 0)
            {
                return MemoryReason(resources);
            }
        }
        else
        {
            var oom = ParseKeyValues(ReadOrNull(Path.Combine(memory, "memory.oom_control")));
            if (oom.GetValueOrDefault("under_oom") > 0 || oom.GetValueOrDefault("oom_kill") > 0) return MemoryReason(resources);
        }
        var pids = ParseKeyValues(ReadOrNull(Path.Combine(layout.PidsDirectory(jobId), "pids.events")));
        if (pids.GetValueOrDefault("max") is var refused and > 0)
        {
            return $"the job hit its process limit of {resources.MaxProcesses} ({refused} fork(s) refused)";
        }
        return null;
    }

    private static string MemoryReason(RunnerResources resources) => $"the job ran out of memory (limit {resources.MemoryMiB} MiB)";

    public static Dictionary<string, long> ParseKeyValues(string? text)
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in (text ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ', 2);
            if (parts.Length == 2 && long.TryParse(parts[1], CultureInfo.InvariantCulture, out var value)) result[parts[0]] = value;
        }
        return result;
    }

    private static void Write(string dir, string file, string value) => File.WriteAllText(Path.Combine(dir, file), value);

    private void TryWrite(string dir, string file, string value)
    {
        try { Write(dir, file, value); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            logger.LogDebug("Could not write {File} in {Directory}: {Error}", file, dir, ex.Message);
        }
    }

    private static string? ReadOrNull(string path)
    {
        try { return File.ReadAllText(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }
}
