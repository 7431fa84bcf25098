using System.Runtime.ExceptionServices;
using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Cache.Storage;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Cache.Entries;

/// <summary>
/// An upload's multipart upload on an S3 store, for Azure blocks and v1 chunks alike: started once, by the first
/// part (and recorded as <c>multipart</c> in the staging folder, for commit and for cleanup after a restart);
/// each part forwarded while its body streams in; at commit the parts that never got there uploaded from the
/// spool and the upload completed — or aborted when the upload is dropped or its parts cannot make the object.
/// </summary>
internal sealed class MultipartForwarding(IMultipartBlobStore store, Func<long, string> directoryOf, ILogger logger)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<long, Task<MultipartUpload>> _started = [];

    public long MinPartBytes => store.MinPartBytes;
    public int MaxPartNumber => store.MaxPartNumber;

    private string RecordPath(long entryId) => Path.Combine(directoryOf(entryId), "multipart");

    /// <summary>True once the entry's multipart upload exists (or is being started).</summary>
    public bool HasStarted(long entryId)
    {
        lock (_gate)
        {
            if (_started.ContainsKey(entryId)) return true;
        }
        return File.Exists(RecordPath(entryId));
    }

    /// <summary>The entry's multipart upload as recorded in its staging folder, or null.</summary>
    public MultipartUpload? Pending(long entryId) => Read(RecordPath(entryId));

    /// <summary>Uploads part <paramref name="partNumber"/> while the tee reads the body; null when the store failed (the part is still spooled, and commit falls back).</summary>
    public async Task<string?> ForwardAsync(CacheEntry entry, int partNumber, TeeReadStream body, long length, CancellationToken cancellationToken)
    {
        try
        {
            var upload = await StartOnceAsync(entry, cancellationToken);
            return await store.UploadPartAsync(upload.ObjectKey, upload.UploadId, partNumber, body, length, cancellationToken);
        }
        catch (Exception) when (body.SourceFailure is { } failure)
        {
            // The client's body failed (or went past the limit) under the S3 client, which reports it as its own failure.
            ExceptionDispatchInfo.Throw(failure);
            throw;
        }
        catch (Exception e) when (e is BlobStoreUnavailableException or MultipartRejectedException)
        {
            logger.LogWarning("Cache upload {EntryId}: part {PartNumber} not forwarded to the store ({Reason}); commit uploads it from the spool", entry.Id, partNumber, e.Message);
            return null;
        }
    }

    /// <summary>
    /// Uploads from the spool the parts that never made it to the store (arrived before the upload started, a failed
    /// forward), then completes the upload. False when the store refused the parts; the caller then aborts and stores the object another way.
    /// </summary>
    public async Task<bool> TryCompleteAsync(long entryId, MultipartUpload upload, IReadOnlyList<PlannedPart> parts, bool hashedInFlight, CancellationToken cancellationToken)
    {
        try
        {
            var list = new List<BlobPart>(parts.Count);
            foreach (var part in parts)
            {
                var etag = part.ETag;
                if (etag is null)
                {
                    await using var spooled = part.OpenSpooled();
                    etag = await store.UploadPartAsync(upload.ObjectKey, upload.UploadId, part.Number, spooled, part.Length, cancellationToken);
                }
                list.Add(new BlobPart(part.Number, etag));
            }
            await store.CompleteMultipartAsync(upload.ObjectKey, upload.UploadId, list, cancellationToken);
        }
        catch (MultipartRejectedException e)
        {
            logger.LogWarning("Cache upload {EntryId}: the store refused the parts ({Reason}); storing the upload in one stream instead", entryId, e.Message);
            return false;
        }
        Forget(entryId);
        logger.LogDebug("Cache upload {EntryId}: completed the multipart upload from {Parts} parts (hashed while uploading: {HashedInFlight})", entryId, parts.Count, hashedInFlight);
        return true;
    }

    /// <summary>Aborts the entry's multipart upload, if any; a store that cannot is logged (its parts stay until the store's own lifecycle rules drop them).</summary>
    public async Task AbortAsync(long entryId)
    {
        if (Pending(entryId) is { } upload) await AbortQuietlyAsync(entryId, upload);
        Forget(entryId);
    }

    private async Task AbortQuietlyAsync(long entryId, MultipartUpload upload)
    {
        try
        {
            await store.AbortMultipartAsync(upload.ObjectKey, upload.UploadId, CancellationToken.None);
            logger.LogDebug("Cache upload {EntryId}: aborted its multipart upload", entryId);
        }
        catch (Exception e) when (e is BlobStoreUnavailableException or MultipartRejectedException)
        {
            // Never a reason to stop: the janitor's sweep and the commit fallback go on past it.
            logger.LogWarning("Cache upload {EntryId}: could not abort its multipart upload ({Reason}); its parts stay in the store", entryId, e.Message);
        }
    }

    /// <summary>The entry's multipart upload, started once (in this process; recorded in the staging folder for commit and cleanup).</summary>
    private async Task<MultipartUpload> StartOnceAsync(CacheEntry entry, CancellationToken cancellationToken)
    {
        var path = RecordPath(entry.Id);
        Task<MultipartUpload>? task;
        lock (_gate)
        {
            if (!_started.TryGetValue(entry.Id, out task))
            {
                task = Read(path) is { } existing ? Task.FromResult(existing) : StartAsync();
                _started[entry.Id] = task;
            }
        }
        try
        {
            return await task.WaitAsync(cancellationToken);
        }
        catch when (task.IsFaulted || task.IsCanceled)
        {
            // A failed start is not remembered: the next part tries again. (Only this caller giving up leaves it running.)
            lock (_gate)
            {
                if (_started.GetValueOrDefault(entry.Id) == task) _started.Remove(entry.Id);
            }
            throw;
        }

        async Task<MultipartUpload> StartAsync()
        {
            var key = UploadStaging.NewObjectKey(entry);
            var upload = new MultipartUpload(key, await store.StartMultipartAsync(key, CancellationToken.None));
            try
            {
                await UploadStaging.ReplaceFileAsync(path, key + "\n" + upload.UploadId, CancellationToken.None);
            }
            catch
            {
                // Unrecorded, nothing would ever abort it (the staging folder went away under us, say).
                await AbortQuietlyAsync(entry.Id, upload);
                throw;
            }
            return upload;
        }
    }

    /// <summary>The upload is over (completed or aborted): its record goes, and a later part would start a new one.</summary>
    private void Forget(long entryId)
    {
        // File.Delete throws when the folder itself is gone (an entry that never staged anything).
        if (File.Exists(RecordPath(entryId))) File.Delete(RecordPath(entryId));
        lock (_gate) _started.Remove(entryId);
    }

    internal static MultipartUpload? Read(string path)
    {
        if (!File.Exists(path)) return null;
        var lines = File.ReadAllText(path).Split('\n');
        return lines.Length == 2 ? new MultipartUpload(lines[0], lines[1]) : null;
    }

}

internal sealed record MultipartUpload(string ObjectKey, string UploadId);

/// <summary>One part of the object: already in the store (<paramref name="ETag"/>) or to be uploaded from the spool.</summary>
internal sealed record PlannedPart(int Number, long Length, string? ETag, Func<Stream> OpenSpooled);
