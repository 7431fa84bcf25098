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
        var root = Path.GetFullPath(workspace);
        var count = 0;
        await using var zstd = new CompressionStream(destination, ZstdLevel, leaveOpen: true);
        await using (var tar = new TarWriter(zstd, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var relative in paths)
            {
                var full = ResolveInside(root, relative) ?? throw new CacheArchiveException($"cache path '{relative}' is outside the workspace");
                if (File.Exists(full))
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

    /// <summary>Checks every member first, then extracts into <paramref name="workspace"/>; throws <see cref="CacheArchiveException"/> naming the first bad member.</summary>
    public static async Task<int> ExtractAsync(string archiveFile, string workspace, CancellationToken ct)
    {
        var root = Path.GetFullPath(workspace);
        // Pass 1: validate every member without writing, so a bad member found late leaves nothing behind.
        await ForEachEntryAsync(archiveFile, (entry, _) => { Check(root, entry); return Task.CompletedTask; }, ct);
        var count = 0;
        await ForEachEntryAsync(archiveFile, async (entry, token) =>
        {
            var target = Check(root, entry);
            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                    Directory.CreateDirectory(target);
                    break;
                case TarEntryType.SymbolicLink:
                    Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                    if (File.Exists(target) || Directory.Exists(target)) File.Delete(target);
                    File.CreateSymbolicLink(target, entry.LinkName);
                    break;
                default:
                    Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                    if (IsSymlink(target)) File.Delete(target); // never write through a link already in the workspace
                    await entry.ExtractToFileAsync(target, overwrite: true, token);
                    break;
            }
            count++;
        }, ct);
        return count;
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

    private static bool IsSymlink(string path) => new FileInfo(path) is { Exists: true, LinkTarget: not null };
}

public sealed class CacheArchiveException(string message) : Exception(message);
