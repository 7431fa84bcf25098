using System.Collections.Concurrent;
using EphemeralCI.Cache.Storage;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// The S3 store on the emulator, recording how the cache wrote to it: whole-object PUTs, parts, completed and
/// aborted multipart uploads (the emulator itself cannot tell an aborted upload from a forgotten one).
/// </summary>
public sealed class RecordingS3Store(S3BlobStore inner) : IBlobStore, IMultipartBlobStore
{
    public ConcurrentQueue<string> Put { get; } = new();
    public ConcurrentQueue<(string Key, int PartNumber, long Length)> Parts { get; } = new();
    public ConcurrentQueue<string> Completed { get; } = new();
    public ConcurrentQueue<(string Key, string UploadId)> Aborted { get; } = new();

    /// <summary>Registers a recording store on the test app's bucket (for <see cref="CacheTestApp.StartAsync"/>'s <c>services</c>).</summary>
    public static Action<IServiceCollection, string?> Register(Action<RecordingS3Store> created) => (services, bucket) =>
    {
        var store = new S3BlobStore(S3Settings.Parse($"{RealServices.S3};Bucket={bucket}"));
        store.EnsureBucketAsync().GetAwaiter().GetResult();
        var recording = new RecordingS3Store(store);
        created(recording);
        services.AddSingleton<IBlobStore>(recording);
    };

    public Task<BlobInfo?> StatAsync(string key, CancellationToken cancellationToken = default) => inner.StatAsync(key, cancellationToken);
    public Task<bool> CopyToAsync(string key, Stream destination, CancellationToken cancellationToken = default) => inner.CopyToAsync(key, destination, cancellationToken);
    public Task<bool> CopyRangeToAsync(string key, long offset, long length, Stream destination, CancellationToken cancellationToken = default) =>
        inner.CopyRangeToAsync(key, offset, length, destination, cancellationToken);

    public Task PutAsync(string key, Stream content, long length, CancellationToken cancellationToken = default)
    {
        Put.Enqueue(key);
        return inner.PutAsync(key, content, length, cancellationToken);
    }

    public Task DeleteAsync(string key, CancellationToken cancellationToken = default) => inner.DeleteAsync(key, cancellationToken);
    public long MinPartBytes => inner.MinPartBytes;
    public int MaxPartNumber => inner.MaxPartNumber;
    public Task<string> StartMultipartAsync(string key, CancellationToken cancellationToken = default) => inner.StartMultipartAsync(key, cancellationToken);

    public async Task<string> UploadPartAsync(string key, string uploadId, int partNumber, Stream content, long length, CancellationToken cancellationToken = default)
    {
        var etag = await inner.UploadPartAsync(key, uploadId, partNumber, content, length, cancellationToken);
        Parts.Enqueue((key, partNumber, length));
        return etag;
    }

    public Task CompleteMultipartAsync(string key, string uploadId, IReadOnlyList<BlobPart> parts, CancellationToken cancellationToken = default)
    {
        Completed.Enqueue(key);
        return inner.CompleteMultipartAsync(key, uploadId, parts, cancellationToken);
    }

    public Task AbortMultipartAsync(string key, string uploadId, CancellationToken cancellationToken = default)
    {
        Aborted.Enqueue((key, uploadId));
        return inner.AbortMultipartAsync(key, uploadId, cancellationToken);
    }
}
