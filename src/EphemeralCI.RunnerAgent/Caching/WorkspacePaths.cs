using System.Runtime.InteropServices;

namespace EphemeralCI.RunnerAgent.Caching;

/// <summary>
/// Resolves paths under the workspace against the real filesystem, one component at a time: every parent that exists
/// must resolve (symbolic links followed, as the kernel would) to a directory inside the workspace, and a parent that
/// does not exist is created as a plain directory inside the already-resolved one. A lexical check alone is not enough:
/// with <c>a -> .</c> and <c>a/b -> ../tmp</c> in place, <c>a/b/x</c> reads as inside but is written outside.
/// Restores run before the first step, so nothing in the runner changes the tree between the check and the write.
/// </summary>
internal static partial class WorkspacePaths
{
    /// <summary>The workspace's own real path (it may itself sit under a link, like /tmp on some systems).</summary>
    public static string RealRoot(string workspace) =>
        RealPath(Path.GetFullPath(workspace)) ?? throw new CacheArchiveException($"workspace '{workspace}' does not exist");

    /// <summary>
    /// The real directory that holds <paramref name="relative"/>'s last component, inside <paramref name="realRoot"/>, and
    /// that component's name; with <paramref name="create"/> missing parents are made. Null when a parent is missing (and
    /// not created). Throws <see cref="CacheArchiveException"/> when a parent leads out of the workspace or is no directory.
    /// </summary>
    public static (string Directory, string Name)? ResolveParent(string realRoot, string relative, bool create, string what)
    {
        var parts = relative.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToArray();
        if (parts.Length == 0 || parts.Contains("..")) throw new CacheArchiveException($"{what} escapes the workspace");
        var current = realRoot;
        foreach (var part in parts[..^1])
        {
            var next = Path.Combine(current, part);
            if (!ExistsNoFollow(next))
            {
                if (!create) return null;
                Directory.CreateDirectory(next); // 'current' is real and inside, 'next' is absent: exactly this directory is made
            }
            var real = RealPath(next);
            if (real is null || !IsInside(realRoot, real))
            {
                throw new CacheArchiveException($"{what} goes through '{Path.GetRelativePath(realRoot, next)}', a link that leads out of the workspace");
            }
            if (!Directory.Exists(real)) throw new CacheArchiveException($"{what} goes through '{Path.GetRelativePath(realRoot, next)}', which is not a directory");
            current = real;
        }
        return (current, parts[^1]);
    }

    /// <summary>
    /// Whether a link created in <paramref name="realDirectory"/> with target <paramref name="linkTarget"/> stays inside the
    /// workspace, as the kernel would resolve it: the longest part of the target that exists is resolved for real (so
    /// <c>a/..</c> through a link <c>a -> .</c> climbs from where <c>a</c> really is), and the rest, which does not exist
    /// and so holds no link, may not climb ('..').
    /// </summary>
    public static bool LinkStaysInside(string realRoot, string realDirectory, string linkTarget)
    {
        if (linkTarget.Length == 0) return false;
        var joined = Path.IsPathRooted(linkTarget) ? linkTarget : realDirectory + "/" + linkTarget;
        var parts = joined.Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (var existing = parts.Length; existing >= 0; existing--)
        {
            if (RealPath("/" + string.Join('/', parts[..existing])) is not { } real) continue;
            var rest = parts[existing..].Where(p => p != ".").ToArray();
            if (rest.Contains("..")) return false;
            return IsInside(realRoot, rest.Length == 0 ? real : Path.Combine([real, .. rest]));
        }
        return false;
    }

    public static bool IsInside(string realRoot, string path) =>
        path == realRoot || path.StartsWith(realRoot.EndsWith('/') ? realRoot : realRoot + "/", StringComparison.Ordinal);

    /// <summary>True for anything at <paramref name="path"/>, a dangling link included (lstat, not stat).</summary>
    public static bool ExistsNoFollow(string path) => new FileInfo(path) is var info && (info.Exists || info.LinkTarget is not null || Directory.Exists(path));

    /// <summary>realpath(3): every link resolved; null when the path (or a link on it) does not resolve.</summary>
    public static string? RealPath(string path)
    {
        var resolved = RealPathNative(path, 0);
        if (resolved == 0) return null;
        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            Free(resolved);
        }
    }

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial nint RealPathNative(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(nint pointer);
}
