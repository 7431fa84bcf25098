using System.Diagnostics;
using System.Globalization;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>Reads the host's /proc: children of a process, liveness (a zombie counts as dead), command lines.</summary>
public static class ProcessTree
{
    /// <summary>Every live descendant of <paramref name="pid"/>, parents before children.</summary>
    public static IReadOnlyList<int> Descendants(int pid)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var (child, parent) in AllParents())
        {
            if (!children.TryGetValue(parent, out var list)) children[parent] = list = [];
            list.Add(child);
        }
        var result = new List<int>();
        var queue = new Queue<int>([pid]);
        while (queue.Count > 0)
        {
            if (!children.TryGetValue(queue.Dequeue(), out var list)) continue;
            foreach (var c in list) { result.Add(c); queue.Enqueue(c); }
        }
        return result;
    }

    public static bool IsAlive(int pid)
    {
        var state = ReadStat(pid)?.State;
        return state is not null and not 'Z' and not 'X';
    }

    public static string CommandLine(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' '); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return ""; }
    }

    /// <summary>The process's /proc/&lt;pid&gt;/cgroup (one line per hierarchy), or empty if it is gone.</summary>
    public static string Cgroups(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/cgroup"); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return ""; }
    }

    public static void Kill(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            p.Kill();
        }
        catch (ArgumentException) { } // already gone
        catch (InvalidOperationException) { }
        catch (System.ComponentModel.Win32Exception) { }
    }

    private static IEnumerable<(int Pid, int Parent)> AllParents()
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)) continue;
            if (ReadStat(pid) is { State: not 'Z' and not 'X' } stat) yield return (pid, stat.Parent);
        }
    }

    /// <summary>A process's state, parent and start time (clock ticks after boot), from /proc/&lt;pid&gt;/stat; null if it is gone.</summary>
    public static ProcessStat? Stat(int pid) => ReadStat(pid);

    /// <summary>This process's start time in clock ticks after boot: every process it starts, and theirs, started at or after it.</summary>
    public static ulong SelfStartTime { get; } = ReadStat(Environment.ProcessId)?.StartTime ?? 0;

    private static ProcessStat? ReadStat(int pid)
    {
        string text;
        try { text = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
        return ParseStat(text);
    }

    /// <summary>Parses one /proc/&lt;pid&gt;/stat line; null if it is not one.</summary>
    public static ProcessStat? ParseStat(string text)
    {
        // "pid (comm) S ppid ..."; comm may contain spaces and parentheses, so parse after the last ')'.
        // After it: field 3 (state) is fields[0], field 4 (ppid) fields[1], field 9 (flags) fields[6],
        // field 22 (starttime) fields[19].
        var close = text.LastIndexOf(')');
        if (close < 0 || close + 4 > text.Length) return null;
        var fields = text[(close + 2)..].Split(' ', 21);
        if (fields.Length < 20 || !int.TryParse(fields[1], CultureInfo.InvariantCulture, out var ppid)) return null;
        _ = uint.TryParse(fields[6], CultureInfo.InvariantCulture, out var flags);
        _ = ulong.TryParse(fields[19], CultureInfo.InvariantCulture, out var started);
        return new ProcessStat(fields[0][0], ppid, started, flags);
    }
}

/// <summary>What /proc/&lt;pid&gt;/stat says of a process: its state letter, parent, start time in clock ticks after boot, and kernel flags.</summary>
public sealed record ProcessStat(char State, int Parent, ulong StartTime, uint Flags = 0)
{
    private const uint PfExiting = 0x4; // PF_EXITING, include/linux/sched.h

    /// <summary>
    /// The kernel is ending it (do_exit has begun): it runs no more code of its own, though until it is a zombie it
    /// still shows in /proc with its cgroup — after the cgroup itself may already be removed.
    /// </summary>
    public bool Exiting => (Flags & PfExiting) != 0;
}
