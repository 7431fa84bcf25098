using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using EphemeralCI.Cache.BuildCache;
using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Cache.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Entries;

/// <summary>
/// Where an entry's upload collects until commit, under <c>{Cache:SpoolDirectory}/uploads/{entryId}/</c>. Every
/// byte is read from the client once, and in that one pass written to the spool, added to the archive's SHA-256
/// (<see cref="OrderedArchiveHash"/>) and — for Azure Put Block and v1 chunks on an S3 store — forwarded to S3 as
/// a part of a multipart upload of the final object (<see cref="MultipartForwarding"/>). Commit then only
/// completes the multipart upload; the spool copy is there for whatever the fast path cannot take (blocks
/// committed in another order than their ids say, chunks that do not line up as parts, parts below S3's 5 MiB
/// minimum, a store that failed mid-part, a restarted process), where commit streams the upload in order to the
/// store, hashing it on the way, without a concatenated copy.
/// <list type="bullet">
/// <item>Put Blob: <c>data</c>, hashed as it arrives (<c>data.sha256</c>).</item>
/// <item>v1 PATCH: chunks written at their offsets into <c>data</c>, hashed in offset order as they arrive; their
///   part numbers (<see cref="ChunkPartMap"/>) and ETags are kept in memory only, so after a restart commit falls back.</item>
/// <item>Put Block: <c>blocks/{hex id}/{write}</c> plus <c>current</c> (the latest write) and <c>{write}.part</c>
///   (S3 part number and ETag); a block's part number is its ordinal + 1, read from the decimal digits its id ends
///   in (the Azure SDK's and the agent's ids: a prefix and a zero-padded index), so parts land in index order.</item>
/// <item>Put Block List: <c>blocklist</c>, the committed blocks and writes in order.</item>
/// <item><c>multipart</c>: object key and upload id, aborted when the upload is dropped (janitor, re-reservation).</item>
/// </list>
/// One upload must reach one replica (or replicas share the folder; the in-memory state is then only lost
/// speed, never a wrong result).
/// </summary>
public sealed class UploadStaging(IOptions<CacheOptions> options, IBlobStore blobs, ILogger<UploadStaging> logger)
{
    private const int BufferSize = 128 * 1024;
    public const int MaxBlockIdBytes = 64;
    /// <summary>Digits of a block id's numeric suffix that make its ordinal (10 000 parts at most, so 5 are plenty).</summary>
    private const int OrdinalDigits = 5;

    private readonly ConcurrentDictionary<long, UploadState> _uploads = new();

    /// <summary>Null on a store without multipart uploads (a folder): commit then stores every upload from the spool.</summary>
    private readonly MultipartForwarding? _forwarding = blobs is IMultipartBlobStore multipart
        ? new MultipartForwarding(multipart, entryId => DirectoryOf(options, entryId), logger)
        : null;

    public string DirectoryOf(long entryId) => DirectoryOf(options, entryId);
    private static string UploadsRoot(IOptions<CacheOptions> options) => Path.Combine(options.Value.SpoolDirectory, "uploads");
    private static string DirectoryOf(IOptions<CacheOptions> options, long entryId) => Path.Combine(UploadsRoot(options), entryId.ToString(CultureInfo.InvariantCulture));
    private string DataPath(long entryId) => Path.Combine(DirectoryOf(entryId), "data");
    private string DataHashPath(long entryId) => DataPath(entryId) + ".sha256";
    private string BlockListPath(long entryId) => Path.Combine(DirectoryOf(entryId), "blocklist");
    private string BlockDirectory(long entryId, string hex) => Path.Combine(DirectoryOf(entryId), "blocks", hex);

    /// <summary>A fresh object name per upload: a re-reserved entry can never point at a stale object.</summary>
    public static string NewObjectKey(CacheEntry entry) => $"{CacheScope.EntriesRoot}/{CacheScope.RepositoryId(entry.Repository)}/{entry.Id}-{Guid.NewGuid():N}";

    /// <summary>Entry ids that have a staging folder (for the janitor).</summary>
    public IEnumerable<long> StagedEntryIds() => Directory.Exists(UploadsRoot(options))
        ? Directory.EnumerateDirectories(UploadsRoot(options)).Select(Path.GetFileName).Select(n => long.TryParse(n, out var id) ? id : -1).Where(id => id > 0)
        : [];

    /// <summary>The entry's multipart upload in the store, while there is one.</summary>
    internal MultipartUpload? PendingMultipart(long entryId) => _forwarding?.Pending(entryId);

    /// <summary>Put Blob: replaces the whole upload with <paramref name="body"/>, hashed as it arrives. False (and nothing kept) past <paramref name="maxBytes"/>.</summary>
    public async Task<bool> WriteWholeAsync(long entryId, Stream body, long maxBytes, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(DirectoryOf(entryId));
        var temp = DataPath(entryId) + "." + Guid.NewGuid().ToString("N");
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        try
        {
            await using (var file = NewFile(temp))
            {
                var tee = new TeeReadStream(body, (data, ct) =>
                {
                    hash.AppendData(data.Span);
                    return file.WriteAsync(data, ct);
                }, maxBytes);
                await tee.DrainAsync(cancellationToken);
            }
        }
        catch (UploadTooLargeException)
        {
            File.Delete(temp);
            return false;
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
        File.Delete(DataHashPath(entryId));
        File.Move(temp, DataPath(entryId), overwrite: true);
        await File.WriteAllTextAsync(DataHashPath(entryId), Convert.ToHexStringLower(hash.GetCurrentHash()), cancellationToken);
        // The blob is now this data, whatever blocks were committed or chunks written before.
        File.Delete(BlockListPath(entryId));
        if (_uploads.TryGetValue(entryId, out var state)) state.Chunks?.Discard();
        return true;
    }

    /// <summary>
    /// Writes one v1 chunk at <paramref name="offset"/> (spool, hash and — when it lines up as a part — its multipart
    /// part, in one pass); chunks of one upload may arrive in parallel. False when the body is not exactly <paramref name="length"/> bytes.
    /// </summary>
    public async Task<bool> WriteRangeAsync(CacheEntry entry, long offset, long length, Stream body, CancellationToken cancellationToken)
    {
        var entryId = entry.Id;
        Directory.CreateDirectory(DirectoryOf(entryId));
        File.Delete(DataHashPath(entryId));
        var state = State(entryId);
        var hash = state.RangeHash;
        var inFlight = hash.TryBeginInFlight(offset);
        var piece = new OrderedArchiveHash.Piece(offset, offset + length, $"{offset}+{length}", () => new BoundedReadStream(OpenData(entryId, FileShare.ReadWrite), offset, length));
        // The size announced at reserve (0 when none) tells the last chunk from the others.
        var partNumber = state.Chunks?.Begin(offset, length, entry.SizeBytes > 0 ? entry.SizeBytes : null);
        var stored = false;
        string? etag = null;
        try
        {
            await using (var file = new FileStream(DataPath(entryId), FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite, BufferSize, FileOptions.Asynchronous))
            {
                file.Position = offset;
                var tee = new TeeReadStream(body, (data, ct) =>
                {
                    if (inFlight) hash.Append(data.Span);
                    return file.WriteAsync(data, ct);
                }, length);
                try
                {
                    if (partNumber is { } number) etag = await _forwarding!.ForwardAsync(entry, number, tee, length, cancellationToken);
                    await tee.DrainAsync(cancellationToken);
                }
                catch (UploadTooLargeException)
                {
                    return false;
                }
                if (tee.Count != length) return false;
            }
            stored = true;
        }
        finally
        {
            state.Chunks?.End(offset, stored, etag);
            if (inFlight) hash.EndInFlight(piece, stored);
            else if (stored) hash.Stored(piece);
        }
        await hash.CatchUpAsync(cancellationToken);
        return true;
    }

    /// <summary>
    /// Put Block: stores one block (once: spool, hash and — on S3 — its multipart part, in one pass). A retry with
    /// the same id replaces it. False (and nothing kept) past <paramref name="maxBytes"/>.
    /// </summary>
    public async Task<bool> WriteBlockAsync(CacheEntry entry, byte[] blockId, Stream body, long? contentLength, long maxBytes, CancellationToken cancellationToken)
    {
        var hex = Convert.ToHexStringLower(blockId);
        var directory = BlockDirectory(entry.Id, hex);
        Directory.CreateDirectory(directory);
        var write = Guid.NewGuid().ToString("N");
        var dataPath = Path.Combine(directory, write);
        var state = State(entry.Id);
        var ordinal = BlockOrdinal(blockId);
        var inFlight = ordinal is { } o && state.BlockHash.TryBeginInFlight(o);
        var piece = new OrderedArchiveHash.Piece(ordinal ?? -1, (ordinal ?? -1) + 1, $"{hex}/{write}",
            () => new FileStream(dataPath, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, BufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan));
        // A part only where S3 can use it: a known length (S3 needs it up front), a part number in range, and
        // either big enough to count as a part or an upload already started (a small block may be the last one).
        var partNumber = _forwarding is not null && contentLength is { } announced && ordinal < _forwarding.MaxPartNumber
                && (announced >= _forwarding.MinPartBytes || _forwarding.HasStarted(entry.Id))
            ? (int)ordinal.Value + 1 : (int?)null;

        var stored = false;
        string? etag = null;
        try
        {
            await using (var file = NewFile(dataPath))
            {
                var tee = new TeeReadStream(body, (data, ct) =>
                {
                    if (inFlight) state.BlockHash.Append(data.Span);
                    return file.WriteAsync(data, ct);
                }, maxBytes);
                try
                {
                    if (partNumber is { } number)
                    {
                        etag = await _forwarding!.ForwardAsync(entry, number, tee, contentLength!.Value, cancellationToken);
                    }
                    await tee.DrainAsync(cancellationToken);
                }
                catch (UploadTooLargeException)
                {
                    return false;
                }
            }
            if (etag is not null) await File.WriteAllTextAsync(dataPath + ".part", $"{partNumber!.Value.ToString(CultureInfo.InvariantCulture)} {etag}", cancellationToken);
            var previous = CurrentWrite(entry.Id, hex);
            await ReplaceFileAsync(Path.Combine(directory, "current"), write, cancellationToken);
            if (previous is not null)
            {
                File.Delete(Path.Combine(directory, previous));
                File.Delete(Path.Combine(directory, previous + ".part"));
            }
            stored = true;
        }
        finally
        {
            if (!stored) File.Delete(dataPath);
            if (inFlight) state.BlockHash.EndInFlight(piece, stored);
            else if (stored && ordinal is not null) state.BlockHash.Stored(piece);
        }
        await state.BlockHash.CatchUpAsync(cancellationToken);
        return true;
    }

    /// <summary>
    /// Put Block List: records which blocks (their latest writes) make the blob, in order. Returns the ids that were
    /// never staged (and then changes nothing), or an empty list on success. Nothing is copied here.
    /// </summary>
    public async Task<IReadOnlyList<string>> CommitBlocksAsync(long entryId, IReadOnlyList<byte[]> blockIds, long maxBytes, CancellationToken cancellationToken)
    {
        var listed = blockIds.Select(id => (Id: id, Hex: Convert.ToHexStringLower(id))).Select(b => (b.Id, b.Hex, Write: CurrentWrite(entryId, b.Hex))).ToList();
        var missing = listed.Where(b => b.Write is null).Select(b => Convert.ToBase64String(b.Id)).ToList();
        if (missing.Count > 0) return missing;
        if (listed.Sum(b => new FileInfo(Path.Combine(BlockDirectory(entryId, b.Hex), b.Write!)).Length) > maxBytes) return ["(total size exceeds the limit)"];
        await ReplaceFileAsync(BlockListPath(entryId), string.Join('\n', listed.Select(b => $"{b.Hex}/{b.Write}")), cancellationToken);
        File.Delete(DataPath(entryId));
        File.Delete(DataHashPath(entryId));
        if (_uploads.TryGetValue(entryId, out var state)) state.Chunks?.Discard();
        return [];
    }

    /// <summary>Bytes uploaded (committed blocks, or the data file), or null when nothing was uploaded or blocks were never committed.</summary>
    public long? UploadedLength(long entryId)
    {
        if (ReadBlockList(entryId) is { } blocks) return blocks.Sum(b => b.Length);
        var data = new FileInfo(DataPath(entryId));
        return data.Exists ? data.Length : null;
    }

    /// <summary>
    /// Puts the upload into the object store and returns its length, SHA-256 (over the committed order) and object
    /// key. Blocks or chunks forwarded as parts become the object by CompleteMultipartUpload; anything else is
    /// streamed from the spool in order, hashed on the way. The caller checks size and hash and deletes the object
    /// on a mismatch.
    /// </summary>
    public async Task<StoredUpload> StoreAsync(CacheEntry entry, CancellationToken cancellationToken)
    {
        var state = _uploads.GetValueOrDefault(entry.Id);
        if (ReadBlockList(entry.Id) is { } blocks)
        {
            var blocksHash = state?.BlockHash.TryGetHash(blocks.Select(b => $"{b.Hex}/{b.Write}").ToList());
            return await StoreAsync(entry, blocks.Select(b => b.Path).ToList(), blocks.Sum(b => b.Length), blocksHash, PartsFor(blocks), cancellationToken);
        }
        var length = new FileInfo(DataPath(entry.Id)).Length;
        if (File.Exists(DataHashPath(entry.Id)))
        {
            // Put Blob: one piece, hashed as it arrived, never forwarded.
            var blobHash = (await File.ReadAllTextAsync(DataHashPath(entry.Id), cancellationToken)).Trim();
            return await StoreAsync(entry, [DataPath(entry.Id)], length, blobHash, parts: null, cancellationToken);
        }
        return await StoreAsync(entry, [DataPath(entry.Id)], length, state?.RangeHash.TryGetHash(length), PartsFor(entry.Id, state, length), cancellationToken);
    }

    /// <param name="files">The upload in order, for hashing and for the fallback.</param>
    /// <param name="knownSha256">The hash computed as the upload arrived, when it could be kept.</param>
    /// <param name="parts">The parts that make the object, or null when they cannot.</param>
    private async Task<StoredUpload> StoreAsync(CacheEntry entry, IReadOnlyList<string> files, long length, string? knownSha256,
        IReadOnlyList<PlannedPart>? parts, CancellationToken cancellationToken)
    {
        if (_forwarding?.Pending(entry.Id) is { } upload)
        {
            if (parts is not null)
            {
                // The hash (when the in-order hash could not be kept) and the completion run side by side.
                using var stopHashing = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                var hashing = knownSha256 is null ? HashInOrderAsync(files, stopHashing.Token) : Task.FromResult(knownSha256);
                bool completed;
                try
                {
                    completed = await _forwarding.TryCompleteAsync(entry.Id, upload, parts, knownSha256 is not null, cancellationToken);
                }
                catch
                {
                    // Nothing keeps reading the spool after the commit failed.
                    await stopHashing.CancelAsync();
                    try { await hashing; } catch (Exception) { /* cancelled, or failing for the same reason */ }
                    throw;
                }
                if (completed)
                {
                    try
                    {
                        return new StoredUpload(length, await hashing, upload.ObjectKey);
                    }
                    catch
                    {
                        // An object nobody can vouch for (the spool could not be read back) must not stay behind.
                        try { await blobs.DeleteAsync(upload.ObjectKey, CancellationToken.None); }
                        catch (BlobStoreUnavailableException) { /* the janitor's orphan sweep gets it */ }
                        throw;
                    }
                }
                knownSha256 = await hashing;
            }
            await _forwarding.AbortAsync(entry.Id);
        }
        return await PutInOrderAsync(entry, files, length, knownSha256, cancellationToken);
    }

    /// <summary>
    /// The parts of the committed blocks when S3 can make the object from them: every block has an ordinal, part
    /// numbers rise along the committed order, and every part but the last is big enough. Null otherwise.
    /// </summary>
    private List<PlannedPart>? PartsFor(IReadOnlyList<CommittedBlock> blocks)
    {
        if (_forwarding is null || blocks.Count == 0) return null;
        var parts = new List<PlannedPart>(blocks.Count);
        var previous = 0;
        for (var i = 0; i < blocks.Count; i++)
        {
            var block = blocks[i];
            if (BlockOrdinal(Convert.FromHexString(block.Hex)) is not { } ordinal || ordinal + 1 > _forwarding.MaxPartNumber || ordinal + 1 <= previous) return null;
            if (i < blocks.Count - 1 && block.Length < _forwarding.MinPartBytes) return null;
            previous = (int)ordinal + 1;
            parts.Add(new PlannedPart(previous, block.Length, block.Part is { } p && p.Number == previous ? p.ETag : null,
                () => new FileStream(block.Path, FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan)));
        }
        return parts;
    }

    /// <summary>The parts of the v1 chunks when they line up as the archive's parts (<see cref="ChunkPartMap.PartsFor"/>); null otherwise.</summary>
    private List<PlannedPart>? PartsFor(long entryId, UploadState? state, long length) =>
        state?.Chunks?.PartsFor(length)?
            .Select(c => new PlannedPart(c.Number, c.Length, c.ETag, () => new BoundedReadStream(OpenData(entryId, FileShare.ReadWrite), c.Offset, c.Length)))
            .ToList();

    private async Task<StoredUpload> PutInOrderAsync(CacheEntry entry, IReadOnlyList<string> files, long length, string? knownSha256, CancellationToken cancellationToken)
    {
        var key = NewObjectKey(entry);
        await using var content = new ConcatenatedReadStream(files, hash: knownSha256 is null);
        await blobs.PutAsync(key, content, length, cancellationToken);
        if (content.Count != length)
        {
            await blobs.DeleteAsync(key, CancellationToken.None);
            throw new IOException($"The staged upload of entry {entry.Id} changed while it was stored ({content.Count} of {length} bytes).");
        }
        return new StoredUpload(length, knownSha256 ?? content.Sha256!, key);
    }

    private static async Task<string> HashInOrderAsync(IReadOnlyList<string> files, CancellationToken cancellationToken)
    {
        await using var content = new ConcatenatedReadStream(files, hash: true);
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            while (await content.ReadAsync(buffer.AsMemory(0, BufferSize), cancellationToken) > 0) { }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return content.Sha256!;
    }

    /// <summary>Deletes everything staged for the entry and aborts its multipart upload, if any; nothing if there is nothing.</summary>
    public async Task DeleteAsync(long entryId, CancellationToken cancellationToken = default)
    {
        if (_forwarding is not null) await _forwarding.AbortAsync(entryId);
        if (_uploads.TryRemove(entryId, out var state)) state.Dispose();
        var directory = DirectoryOf(entryId);
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        _ = cancellationToken;
    }

    /// <summary>
    /// A block's ordinal: the number its id ends in (last <see cref="OrdinalDigits"/> digits at most), as the Azure SDK
    /// (prefix + zero-padded index) and the agent (zero-padded index) name blocks. Null when the id ends in no digit.
    /// </summary>
    internal static long? BlockOrdinal(ReadOnlySpan<byte> blockId)
    {
        var digits = 0;
        while (digits < blockId.Length && digits < OrdinalDigits && blockId[^(digits + 1)] is >= (byte)'0' and <= (byte)'9') digits++;
        if (digits == 0) return null;
        long value = 0;
        foreach (var b in blockId[^digits..]) value = value * 10 + (b - '0');
        return value;
    }

    private List<CommittedBlock>? ReadBlockList(long entryId)
    {
        var path = BlockListPath(entryId);
        if (!File.Exists(path)) return null;
        var blocks = new List<CommittedBlock>();
        foreach (var line in File.ReadAllText(path).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var (hex, write) = (line[..line.IndexOf('/', StringComparison.Ordinal)], line[(line.IndexOf('/', StringComparison.Ordinal) + 1)..]);
            var data = Path.Combine(BlockDirectory(entryId, hex), write);
            var file = new FileInfo(data);
            if (!file.Exists) return null;
            var partText = File.Exists(data + ".part") ? File.ReadAllText(data + ".part").Split(' ') : null;
            var part = partText is [var number, var etag] ? new PartRecord(int.Parse(number, CultureInfo.InvariantCulture), etag) : (PartRecord?)null;
            blocks.Add(new CommittedBlock(hex, write, data, file.Length, part));
        }
        return blocks;
    }

    private string? CurrentWrite(long entryId, string hex)
    {
        var pointer = Path.Combine(BlockDirectory(entryId, hex), "current");
        return File.Exists(pointer) ? File.ReadAllText(pointer).Trim() : null;
    }

    private UploadState State(long entryId) => _uploads.GetOrAdd(entryId, _ => new UploadState(
        _forwarding is null ? null : new ChunkPartMap(_forwarding.MinPartBytes, _forwarding.MaxPartNumber)));

    private FileStream OpenData(long entryId, FileShare share) =>
        new(DataPath(entryId), FileMode.Open, FileAccess.Read, share, BufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan);

    private static FileStream NewFile(string path) => new(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, BufferSize, FileOptions.Asynchronous);

    /// <summary>Writes a small file atomically (temp + rename), so a reader sees the old or the new content, never half.</summary>
    internal static async Task ReplaceFileAsync(string path, string content, CancellationToken cancellationToken)
    {
        var temp = path + "." + Guid.NewGuid().ToString("N");
        await File.WriteAllTextAsync(temp, content, cancellationToken);
        File.Move(temp, path, overwrite: true);
    }

    /// <param name="chunks">v1 chunks as multipart parts; null on a store without multipart uploads.</param>
    private sealed class UploadState(ChunkPartMap? chunks) : IDisposable
    {
        public OrderedArchiveHash BlockHash { get; } = new();
        public OrderedArchiveHash RangeHash { get; } = new();
        public ChunkPartMap? Chunks { get; } = chunks;

        public void Dispose()
        {
            BlockHash.Dispose();
            RangeHash.Dispose();
        }
    }

    private readonly record struct PartRecord(int Number, string ETag);

    private sealed record CommittedBlock(string Hex, string Write, string Path, long Length, PartRecord? Part);
}

public sealed record StoredUpload(long Length, string Sha256, string ObjectKey);

/// <summary>Bytes <paramref name="offset"/> to offset + length of a file (a v1 chunk read back for hashing).</summary>
internal sealed class BoundedReadStream(FileStream file, long offset, long length) : ForwardReadStream
{
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (Count >= length) return 0;
        var read = await RandomAccess.ReadAsync(file.SafeFileHandle, buffer[..(int)Math.Min(buffer.Length, length - Count)], offset + Count, cancellationToken);
        Count += read;
        return read;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) file.Dispose();
        base.Dispose(disposing);
    }
}
