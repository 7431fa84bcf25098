using System.Buffers;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Entries;

/// <summary>
/// Where an entry's upload collects until commit: one data file written whole (Azure Put Blob), at
/// offsets (v1 PATCH chunks with Content-Range, in parallel), or assembled from staged blocks (Azure
/// Put Block + Put Block List). Files live under <c>{Cache:SpoolDirectory}/uploads/{entryId}/</c>, so one
/// upload must reach one replica (or replicas share the folder); commit hashes the data file and
/// hands it to the object store. The janitor deletes the folders of reservations that never commit.
/// </summary>
public sealed class UploadStaging(IOptions<CacheOptions> options)
{
    private const int BufferSize = 128 * 1024;
    public const int MaxBlockIdBytes = 64;

    private string UploadsRoot => Path.Combine(options.Value.SpoolDirectory, "uploads");

    public string DirectoryOf(long entryId) => Path.Combine(UploadsRoot, entryId.ToString(System.Globalization.CultureInfo.InvariantCulture));
    private string DataPath(long entryId) => Path.Combine(DirectoryOf(entryId), "data");
    private string BlockPath(long entryId, byte[] blockId) => Path.Combine(DirectoryOf(entryId), "blocks", Convert.ToHexStringLower(blockId));

    /// <summary>Entry ids that have a staging folder (for the janitor).</summary>
    public IEnumerable<long> StagedEntryIds() => Directory.Exists(UploadsRoot)
        ? Directory.EnumerateDirectories(UploadsRoot).Select(Path.GetFileName).Select(n => long.TryParse(n, out var id) ? id : -1).Where(id => id > 0)
        : [];

    /// <summary>Replaces the whole data file with <paramref name="body"/>. False (and nothing kept) past <paramref name="maxBytes"/>.</summary>
    public async Task<bool> WriteWholeAsync(long entryId, Stream body, long maxBytes, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(DirectoryOf(entryId));
        var temp = DataPath(entryId) + "." + Guid.NewGuid().ToString("N");
        if (!await CopyLimitedAsync(body, temp, maxBytes, cancellationToken)) return false;
        File.Move(temp, DataPath(entryId), overwrite: true);
        return true;
    }

    /// <summary>Writes one v1 chunk at <paramref name="offset"/>; chunks of one upload may arrive in parallel. False when the body is not exactly <paramref name="length"/> bytes.</summary>
    public async Task<bool> WriteRangeAsync(long entryId, long offset, long length, Stream body, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(DirectoryOf(entryId));
        await using var file = new FileStream(DataPath(entryId), FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite, BufferSize, FileOptions.Asynchronous);
        file.Position = offset;
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            long written = 0;
            int read;
            while ((read = await body.ReadAsync(buffer.AsMemory(0, BufferSize), cancellationToken)) > 0)
            {
                written += read;
                if (written > length) return false;
                await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }
            return written == length;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Stages one Azure block. False past <paramref name="maxBytes"/>.</summary>
    public async Task<bool> WriteBlockAsync(long entryId, byte[] blockId, Stream body, long maxBytes, CancellationToken cancellationToken)
    {
        var path = BlockPath(entryId, blockId);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + "." + Guid.NewGuid().ToString("N");
        if (!await CopyLimitedAsync(body, temp, maxBytes, cancellationToken)) return false;
        File.Move(temp, path, overwrite: true);
        return true;
    }

    /// <summary>
    /// Concatenates the listed blocks, in order, into the data file (Put Block List). Returns the ids
    /// that were never staged (and then changes nothing), or an empty list on success.
    /// </summary>
    public async Task<IReadOnlyList<string>> CommitBlocksAsync(long entryId, IReadOnlyList<byte[]> blockIds, long maxBytes, CancellationToken cancellationToken)
    {
        var missing = blockIds.Where(id => !File.Exists(BlockPath(entryId, id))).Select(Convert.ToBase64String).ToList();
        if (missing.Count > 0) return missing;
        if (blockIds.Sum(id => new FileInfo(BlockPath(entryId, id)).Length) > maxBytes) return ["(total size exceeds the limit)"];
        Directory.CreateDirectory(DirectoryOf(entryId));
        var temp = DataPath(entryId) + "." + Guid.NewGuid().ToString("N");
        await using (var data = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferSize, FileOptions.Asynchronous))
        {
            foreach (var id in blockIds)
            {
                await using var block = new FileStream(BlockPath(entryId, id), FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan);
                await block.CopyToAsync(data, BufferSize, cancellationToken);
            }
        }
        File.Move(temp, DataPath(entryId), overwrite: true);
        return [];
    }

    /// <summary>The uploaded data's length and SHA-256, or null when nothing was uploaded (or blocks were never committed).</summary>
    public async Task<(long Length, string Sha256)?> HashAsync(long entryId, CancellationToken cancellationToken)
    {
        if (!File.Exists(DataPath(entryId))) return null;
        await using var data = OpenData(entryId);
        var hash = await SHA256.HashDataAsync(data, cancellationToken);
        return (data.Length, Convert.ToHexStringLower(hash));
    }

    public FileStream OpenData(long entryId) =>
        new(DataPath(entryId), FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan);

    /// <summary>Deletes everything staged for the entry; nothing if there is nothing.</summary>
    public void Delete(long entryId)
    {
        var directory = DirectoryOf(entryId);
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
    }

    private static async Task<bool> CopyLimitedAsync(Stream body, string path, long maxBytes, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        var keep = false;
        try
        {
            await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferSize, FileOptions.Asynchronous);
            long total = 0;
            int read;
            while ((read = await body.ReadAsync(buffer.AsMemory(0, BufferSize), cancellationToken)) > 0)
            {
                total += read;
                if (total > maxBytes) return false;
                await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }
            keep = true;
            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            if (!keep) File.Delete(path);
        }
    }
}
