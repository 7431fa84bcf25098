using System.Formats.Tar;
using ZstdSharp;

namespace EphemeralCI.RunnerAgent.Caching;

/// <summary>
/// A cache's paths as one tar stream compressed with zstd, relative to the workspace. Extraction
/// refuses (before writing anything) any member that would land outside the workspace: absolute
/// names, '..' segments, links whose target leaves it, devices and FIFOs. A poisoned archive then
/// fails the restore instead of planting files elsewhere in the runner.
/// </summary>
public static class CacheArchive
{
    private const int ZstdLevel = 3;

    /// <summary>Writes the existing <paramref name="paths"/> (files or directories, relative to <paramref name="workspace"/>); returns how many entries went in.</summary>
    public static async Task<int> CreateAsync(string workspace, IReadOnlyList<string> paths, Stream destination, CancellationToken ct)
    {
        var root = WorkspacePaths.RealRoot(workspace);
        var count = 0;
        await using var zstd = new CompressionStream(destination, ZstdLevel, leaveOpen: true);
        await using (var tar = new TarWriter(zstd, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var relative in paths)
            {
                if (ResolveInside(root, relative) is null) throw new CacheArchiveException($"cache path '{relative}' is outside the workspace");
                // Every parent resolved for real (a step may have made 'deps' a link to /etc or to 'a -> /'), the path itself never followed.
                if (WorkspacePaths.ResolveParent(root, relative, create: false, $"cache path '{relative}'") is not var (directory, name)) continue;
                var full = Path.Combine(directory, name);
                var info = new FileInfo(full);
                if (info.LinkTarget is { } link)
                {
                    if (!WorkspacePaths.LinkStaysInside(root, directory, link))
                    {
                        throw new CacheArchiveException($"cache path '{relative}' is a link to '{link}', outside the workspace; it is not followed");
                    }
                    await tar.WriteEntryAsync(full, Path.GetRelativePath(root, full), ct); // archived as the link it is
                    count++;
                }
                else if (info.Exists)
                {
                    await tar.WriteEntryAsync(full, Path.GetRelativePath(root, full), ct);
                    count++;
                }
                else if (Directory.Exists(full))
                {
                    count += await WriteTreeAsync(tar, root, full, ct);
                }
            }
        }
        await zstd.FlushAsync(ct);
        return count;
    }

    /// <summary>
    /// A directory and everything under it. Symbolic links are stored as links and never followed, so
    /// a link cannot pull files from outside the workspace into the archive (or loop).
    /// </summary>
    private static async Task<int> WriteTreeAsync(TarWriter tar, string root, string directory, CancellationToken ct)
    {
        await tar.WriteEntryAsync(directory, Path.GetRelativePath(root, directory), ct);
        var count = 1;
        foreach (var item in Directory.EnumerateFileSystemEntries(directory).Order(StringComparer.Ordinal))
        {
            if (Directory.Exists(item) && new DirectoryInfo(item).LinkTarget is null)
            {
                count += await WriteTreeAsync(tar, root, item, ct);
            }
            else
            {
                await tar.WriteEntryAsync(item, Path.GetRelativePath(root, item), ct);
                count++;
            }
        }
        return count;
    }

    /// <summary>
    /// Checks every member first, then extracts into <paramref name="workspace"/>; throws <see cref="CacheArchiveException"/>
    /// naming the first bad member. The first pass is lexical and also follows the archive's own links (a chain such as
    /// <c>a -> .</c>, <c>a/b -> ../tmp</c>, <c>a/b/x</c> is refused before anything is written). The second pass writes
    /// each member only after its parents resolved, on the real filesystem, inside the workspace (links that were
    /// already there included), and creates a link only when its target, seen from the link's real directory, stays inside.
    /// </summary>
    public static async Task<int> ExtractAsync(string archiveFile, string workspace, CancellationToken ct)
    {
        var root = WorkspacePaths.RealRoot(workspace);
        // Pass 1: validate every member without writing, so a bad member found late leaves nothing behind.
        var links = new ArchiveLinks(root);
        await ForEachEntryAsync(archiveFile, (entry, _) => { Check(root, entry); links.Check(entry); return Task.CompletedTask; }, ct);
        var count = 0;
        await ForEachEntryAsync(archiveFile, async (entry, token) =>
        {
            Check(root, entry);
            var what = $"archive member '{entry.Name}'";
            var (directory, name) = WorkspacePaths.ResolveParent(root, entry.Name, create: true, what)!.Value;
            var target = Path.Combine(directory, name);
            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                    if (IsSymlink(target)) throw new CacheArchiveException($"{what} is a directory where the workspace has a link");
                    Directory.CreateDirectory(target);
                    break;
                case TarEntryType.SymbolicLink:
                    if (!WorkspacePaths.LinkStaysInside(root, directory, entry.LinkName))
                    {
                        throw new CacheArchiveException($"{what} links to '{entry.LinkName}', outside the workspace");
                    }
                    if (IsSymlink(target) || File.Exists(target)) File.Delete(target);
                    else if (Directory.Exists(target)) throw new CacheArchiveException($"{what} is a link where the workspace has a directory");
                    File.CreateSymbolicLink(target, entry.LinkName);
                    break;
                default:
                    if (IsSymlink(target)) File.Delete(target); // never write through a link already in the workspace
                    await entry.ExtractToFileAsync(target, overwrite: true, token);
                    break;
            }
            count++;
        }, ct);
        return count;
    }

    /// <summary>
    /// The archive's own links, followed lexically while the members are checked, so a chain of links inside one archive is
    /// refused before the first write. (Links already in the workspace are the second pass's business.)
    /// </summary>
    private sealed class ArchiveLinks(string root)
    {
        private const int MaxHops = 40; // as the kernel's ELOOP limit
        private readonly Dictionary<string, string> _links = new(StringComparer.Ordinal);

        public void Check(TarEntry entry)
        {
            var what = $"archive member '{entry.Name}'";
            var full = Walk(root, entry.Name, followLast: false, what);
            if (entry.EntryType != TarEntryType.SymbolicLink) return;
            Walk(Path.GetDirectoryName(full)!, entry.LinkName, followLast: true, what);
            _links[full] = entry.LinkName;
        }

        /// <summary>
        /// Walks <paramref name="path"/> from <paramref name="start"/> one component at a time as the kernel would, following
        /// the archive's links recorded so far ('..' climbs from where a link led, not lexically); throws as soon as the walk
        /// leaves the workspace.
        /// </summary>
        private string Walk(string start, string path, bool followLast, string what)
        {
            var current = start;
            var pending = new List<string>();
            if (Path.IsPathRooted(path))
            {
                // An absolute target is taken as written: inside the workspace and without '..', or refused.
                if (path.Split('/').Contains("..") || !WorkspacePaths.IsInside(root, Path.GetFullPath(path))) throw Outside(what, path);
                current = root;
                path = Path.GetRelativePath(root, Path.GetFullPath(path));
            }
            pending.AddRange(path.Split('/', StringSplitOptions.RemoveEmptyEntries));
            var hops = 0;
            while (pending.Count > 0)
            {
                var part = pending[0];
                pending.RemoveAt(0);
                if (part == ".") continue;
                if (part == "..")
                {
                    current = Path.GetDirectoryName(current) ?? "/";
                    if (!WorkspacePaths.IsInside(root, current)) throw Outside(what, path);
                    continue;
                }
                var next = Path.Combine(current, part);
                if ((pending.Count > 0 || followLast) && _links.TryGetValue(next, out var link))
                {
                    if (++hops > MaxHops) throw new CacheArchiveException($"{what} runs through too many links");
                    if (Path.IsPathRooted(link))
                    {
                        current = root;
                        link = Path.GetRelativePath(root, Path.GetFullPath(link)); // checked inside and free of '..' when it was recorded
                    }
                    pending.InsertRange(0, link.Split('/', StringSplitOptions.RemoveEmptyEntries));
                    continue;
                }
                current = next;
            }
            return current;
        }

        private static CacheArchiveException Outside(string what, string path) =>
            new($"{what} leads out of the workspace through a link ('{path}')");
    }

    private static async Task ForEachEntryAsync(string archiveFile, Func<TarEntry, CancellationToken, Task> action, CancellationToken ct)
    {
        await using var file = File.OpenRead(archiveFile);
        await using var zstd = new DecompressionStream(file);
        await using var tar = new TarReader(zstd);
        while (await tar.GetNextEntryAsync(copyData: false, ct) is { } entry)
        {
            await action(entry, ct);
        }
    }

    /// <summary>The member's absolute target inside <paramref name="root"/>, or throws.</summary>
    internal static string Check(string root, TarEntry entry)
    {
        if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.Directory or TarEntryType.SymbolicLink))
        {
            throw new CacheArchiveException($"archive member '{entry.Name}' is a {entry.EntryType}, which a cache never holds");
        }
        var target = ResolveInside(root, entry.Name) ?? throw new CacheArchiveException($"archive member '{entry.Name}' escapes the workspace");
        if (entry.EntryType == TarEntryType.SymbolicLink)
        {
            var linkTarget = Path.IsPathRooted(entry.LinkName) ? entry.LinkName : Path.Combine(Path.GetDirectoryName(target)!, entry.LinkName);
            if (ResolveInside(root, Path.GetRelativePath(root, Path.GetFullPath(linkTarget))) is null)
            {
                throw new CacheArchiveException($"archive member '{entry.Name}' links to '{entry.LinkName}', outside the workspace");
            }
        }
        return target;
    }

    /// <summary>The absolute path of <paramref name="relative"/> under <paramref name="root"/>, or null when it is rooted or leaves it.</summary>
    internal static string? ResolveInside(string root, string relative)
    {
        if (string.IsNullOrEmpty(relative) || Path.IsPathRooted(relative) || relative.Split('/', '\\').Contains("..")) return null;
        var full = Path.GetFullPath(Path.Combine(root, relative));
        return full == root || full.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? full : null;
    }

    private static bool IsSymlink(string path) => new FileInfo(path).LinkTarget is not null; // lstat: dangling links too
}

public sealed class CacheArchiveException(string message) : Exception(message);
