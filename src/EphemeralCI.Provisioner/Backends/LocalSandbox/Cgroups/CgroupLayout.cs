using System.Globalization;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox.Cgroups;

public enum CgroupMode
{
    /// <summary>cgroup v2 only (laptops, current distributions): every controller and cgroup.kill in one tree.</summary>
    Unified,
    /// <summary>v1 controllers (memory, pids, cpu) each in its own tree, plus a v2 tree that only gives us cgroup.kill.</summary>
    Hybrid,
}

/// <summary>
/// Where this machine's cgroups are and where job cgroups go, detected once at start-up from
/// /proc/self/mountinfo and /proc/self/cgroup. Job cgroups are created below this process's own
/// cgroup in every tree, so a job is also bounded by whatever limits the provisioner itself runs under.
/// </summary>
public sealed record CgroupLayout(
    CgroupMode Mode,
    /// <summary>The parent of job cgroups in the v2 tree (the only tree in Unified mode).</summary>
    string UnifiedParent,
    /// <summary>Hybrid: the parent of job cgroups in the v1 memory, pids and cpu trees.</summary>
    string? MemoryParent,
    string? PidsParent,
    string? CpuParent)
{
    public static readonly string[] RequiredControllers = ["memory", "pids", "cpu"];

    /// <summary>Every directory a job's cgroup has, one per tree (distinct).</summary>
    public IReadOnlyList<string> JobDirectories(Guid jobId)
    {
        var name = jobId.ToString();
        var parents = Mode == CgroupMode.Unified
            ? [UnifiedParent]
            : new[] { UnifiedParent, MemoryParent!, PidsParent!, CpuParent! };
        return parents.Distinct(StringComparer.Ordinal).Select(p => Path.Combine(p, name)).ToList();
    }

    public string UnifiedDirectory(Guid jobId) => Path.Combine(UnifiedParent, jobId.ToString());
    public string MemoryDirectory(Guid jobId) => Path.Combine(Mode == CgroupMode.Unified ? UnifiedParent : MemoryParent!, jobId.ToString());
    public string PidsDirectory(Guid jobId) => Path.Combine(Mode == CgroupMode.Unified ? UnifiedParent : PidsParent!, jobId.ToString());
    public string CpuDirectory(Guid jobId) => Path.Combine(Mode == CgroupMode.Unified ? UnifiedParent : CpuParent!, jobId.ToString());

    /// <summary>Every parent directory (one per tree), for finding leftovers.</summary>
    public IReadOnlyList<string> Parents => Mode == CgroupMode.Unified
        ? [UnifiedParent]
        : new[] { UnifiedParent, MemoryParent!, PidsParent!, CpuParent! }.Distinct(StringComparer.Ordinal).ToList();

    /// <summary>
    /// Works out the layout from the text of /proc/self/mountinfo and /proc/self/cgroup. Pure, so
    /// both layouts are unit tested on any machine. Throws <see cref="CgroupUnavailableException"/>
    /// saying what is missing when neither layout is usable.
    /// </summary>
    /// <param name="controllersOf">Reads a v2 directory's cgroup.controllers (null if unreadable).</param>
    public static CgroupLayout Detect(string mountInfo, string selfCgroup, string parentName, Func<string, string?> controllersOf)
    {
        var mounts = ParseMounts(mountInfo);
        var own = ParseSelfCgroup(selfCgroup);
        var v2 = mounts.FirstOrDefault(m => m.FsType == "cgroup2");
        var v1 = mounts.Where(m => m.FsType == "cgroup").ToList();

        string? V1Parent(string controller)
        {
            var mount = v1.FirstOrDefault(m => m.Controllers.Contains(controller));
            if (mount is null) return null;
            var path = own.FirstOrDefault(e => e.Controllers.Contains(controller)).Path ?? "/";
            return Path.Combine(Under(mount, path), parentName);
        }

        if (v2 is null)
        {
            throw new CgroupUnavailableException("no cgroup2 filesystem is mounted (needed for cgroup.kill): mount one at /sys/fs/cgroup (pure v2) or /sys/fs/cgroup/unified (hybrid)");
        }
        var v2Own = own.FirstOrDefault(e => e.HierarchyId == 0).Path ?? "/";
        var v2Dir = Under(v2, v2Own);
        var v2Parent = Path.Combine(v2Dir, parentName);

        var memory = V1Parent("memory");
        var pids = V1Parent("pids");
        var cpu = V1Parent("cpu");
        if (memory is not null || pids is not null || cpu is not null)
        {
            // Once a controller is bound to a v1 tree it cannot appear in the v2 tree: hybrid it is.
            var missing = new[] { ("memory", memory), ("pids", pids), ("cpu", cpu) }.Where(x => x.Item2 is null).Select(x => x.Item1).ToList();
            if (missing.Count > 0)
            {
                throw new CgroupUnavailableException($"hybrid cgroups without the v1 controller(s) {string.Join(", ", missing)}: mount them (e.g. mount -t cgroup -o {missing[0]} cgroup /sys/fs/cgroup/{missing[0]})");
            }
            return new CgroupLayout(CgroupMode.Hybrid, v2Parent, memory, pids, cpu);
        }

        var available = (controllersOf(v2Dir) ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var absent = RequiredControllers.Except(available).ToList();
        if (absent.Count > 0)
        {
            throw new CgroupUnavailableException($"the cgroup v2 tree at {v2Dir} does not offer the controller(s) {string.Join(", ", absent)}: run the provisioner in a delegated cgroup (systemd: Delegate=yes, or systemd-run --user -p Delegate=yes)");
        }
        return new CgroupLayout(CgroupMode.Unified, v2Parent, null, null, null);
    }

    private static string Under(Mount mount, string cgroupPath)
    {
        // A mount may show only part of the tree (its root is not "/" inside some containers).
        var relative = cgroupPath;
        if (mount.Root != "/" && relative.StartsWith(mount.Root, StringComparison.Ordinal)) relative = relative[mount.Root.Length..];
        return Path.Combine(mount.MountPoint, relative.TrimStart('/')).TrimEnd('/');
    }

    private sealed record Mount(string Root, string MountPoint, string FsType, HashSet<string> Controllers);

    private static List<Mount> ParseMounts(string mountInfo)
    {
        var result = new List<Mount>();
        foreach (var line in mountInfo.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            // "id parent maj:min root mountpoint options [optional...] - fstype source superoptions"
            var dash = line.IndexOf(" - ", StringComparison.Ordinal);
            if (dash < 0) continue;
            var left = line[..dash].Split(' ');
            var right = line[(dash + 3)..].Split(' ');
            if (left.Length < 5 || right.Length < 3) continue;
            var controllers = right[2].Split(',').ToHashSet(StringComparer.Ordinal);
            result.Add(new Mount(Unescape(left[3]), Unescape(left[4]), right[0], controllers));
        }
        return result;
    }

    private static List<(int HierarchyId, HashSet<string> Controllers, string? Path)> ParseSelfCgroup(string selfCgroup) =>
        selfCgroup.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(':', 3))
            .Where(p => p.Length == 3 && int.TryParse(p[0], NumberStyles.None, CultureInfo.InvariantCulture, out _))
            .Select(p => (int.Parse(p[0], CultureInfo.InvariantCulture), p[1].Split(',').ToHashSet(StringComparer.Ordinal), (string?)p[2]))
            .ToList();

    // mountinfo escapes space, tab, newline and backslash as octal.
    private static string Unescape(string s) =>
        s.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal)
         .Replace("\\012", "\n", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal);
}

/// <summary>Neither cgroup layout is usable on this machine; the message says what is missing.</summary>
public sealed class CgroupUnavailableException(string message) : Exception(message);
