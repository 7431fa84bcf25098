using System.Diagnostics;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>One top-level entry of a job's root: a directory (the job's private overlay of the base) or a symlink.</summary>
public sealed record RootEntry(string Name, string? HostDirectory, string? LinkTarget);

/// <summary>
/// A job's private copy-on-write view of a base root filesystem (a template's RootFilesystem, e.g.
/// made with debootstrap): one overlayfs per top-level directory of the base, whose upper layer is
/// in the job's directory, so writes to /usr or /etc land there and vanish with it.
/// bubblewrap 0.8 (Debian bookworm) has no --overlay (added in 0.9), so the provisioner mounts
/// the overlays itself, which needs root; one overlay per directory (rather than one for the whole
/// root) also lets a base's directory be a bind mount, which overlayfs would not look through.
/// </summary>
public static class OverlayRoot
{
    /// <summary>What bubblewrap itself provides inside the sandbox; never taken from the base.</summary>
    private static readonly HashSet<string> Provided = ["proc", "dev", "sys", "tmp", "run", "workspace", "lost+found"];

    /// <summary>Mounts the job's overlays under <c>{jobDirectory}/root</c>. The mount source names the job, so mount tables show whose it is.</summary>
    public static IReadOnlyList<RootEntry> Mount(string baseRoot, string jobDirectory, Guid jobId)
    {
        if (!Directory.Exists(baseRoot)) throw new RunnerStartException($"the template's root filesystem '{baseRoot}' does not exist");
        if (!Environment.IsPrivilegedProcess)
        {
            throw new RunnerStartException("a per-job overlay root needs the provisioner to run as root (bubblewrap 0.8 has no --overlay); use a template without RootFilesystem");
        }
        var entries = new List<RootEntry>();
        foreach (var entry in new DirectoryInfo(baseRoot).EnumerateFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            if (Provided.Contains(entry.Name)) continue;
            if (entry.LinkTarget is { } target)
            {
                entries.Add(new RootEntry(entry.Name, null, target));
                continue;
            }
            if (entry is not DirectoryInfo) continue;
            var upper = Path.Combine(jobDirectory, "layers", entry.Name, "upper");
            var work = Path.Combine(jobDirectory, "layers", entry.Name, "work");
            var merged = Path.Combine(jobDirectory, "root", entry.Name);
            Directory.CreateDirectory(upper);
            Directory.CreateDirectory(work);
            Directory.CreateDirectory(merged);
            Run("mount", "-t", "overlay", $"eci-{jobId}", "-o", $"lowerdir={Escape(entry.FullName)},upperdir={Escape(upper)},workdir={Escape(work)}", merged);
            entries.Add(new RootEntry(entry.Name, merged, null));
        }
        return entries;
    }

    /// <summary>Unmounts everything mounted below <paramref name="directory"/> (deepest first). Idempotent; must run before the directory is deleted.</summary>
    public static void UnmountAll(string directory)
    {
        var prefix = Path.GetFullPath(directory).TrimEnd('/') + "/";
        var mountPoints = File.ReadAllLines("/proc/self/mountinfo")
            .Select(l => l.Split(' '))
            .Where(f => f.Length > 4)
            .Select(f => f[4].Replace("\\040", " ", StringComparison.Ordinal))
            .Where(m => m.StartsWith(prefix, StringComparison.Ordinal))
            .Distinct()
            .OrderByDescending(m => m.Length);
        foreach (var mountPoint in mountPoints)
        {
            // Lazy: the sandbox is already dead, but a lingering reference must not keep the job's files.
            Run("umount", "--lazy", mountPoint);
        }
    }

    // overlayfs options are comma separated; a comma or colon in a path would be read as a separator.
    private static string Escape(string path) =>
        path.IndexOfAny([',', ':']) >= 0 ? throw new RunnerStartException($"path '{path}' contains ',' or ':', which overlayfs options cannot hold") : path;

    private static void Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi) ?? throw new RunnerStartException($"{file} did not start");
        var error = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new RunnerStartException($"{file} {string.Join(' ', args)} failed: {error.Trim()}");
    }
}
