using Minio;
using Minio.DataModel.Args;
using Minio.Exceptions;

namespace EphemeralCI.Cache.Storage;

/// <summary>
/// Cache objects in one S3 bucket through the Minio SDK (MinIO, or any S3 API).
/// Reads are always whole-object GETs: Minio 7.0.0's GetObject with offset/length throws
/// PartialContentException, so ranged reads (issue 5) must use a presigned GET with a Range header.
/// Nothing here lists the bucket: the S3 emulator our tests use answers ListObjects malformed.
/// </summary>
public sealed class S3BlobStore : IBlobStore, IDisposable
{
    // Whole-object transfers of up to Cache:MaxObjectBytes go through one request (GET) or large
    // parts (PUT); HttpClient's 100 s default would cut them off on a slow link. Aborted requests
    // still stop at once through their cancellation tokens.
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromMinutes(30);

    private readonly HttpClient _http;
    private readonly IMinioClient _client;

    public S3BlobStore(S3Settings settings)
    {
        Settings = settings;
        _http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = RequestTimeout };
        _client = new MinioClient()
            .WithEndpoint(settings.Endpoint.Host, settings.Endpoint.Port)
            .WithCredentials(settings.AccessKey, settings.SecretKey)
            .WithSSL(settings.UseSsl)
            .WithRegion(settings.Region)
            .WithHttpClient(_http)
            .Build();
    }

    public S3Settings Settings { get; }
    public string Bucket => Settings.Bucket;

    public Task<bool> BucketExistsAsync(CancellationToken cancellationToken = default) =>
        _client.BucketExistsAsync(new BucketExistsArgs().WithBucket(Bucket), cancellationToken);

    /// <summary>Creates the bucket unless it exists; a concurrent creator (another replica) is not an error.</summary>
    public async Task<bool> EnsureBucketAsync(CancellationToken cancellationToken = default)
    {
        if (await BucketExistsAsync(cancellationToken)) return false;
        try
        {
            await _client.MakeBucketAsync(new MakeBucketArgs().WithBucket(Bucket).WithLocation(Settings.Region), cancellationToken);
            return true;
        }
        catch (MinioException)
        {
            if (await BucketExistsAsync(cancellationToken)) return false;
            throw;
        }
    }

    public async Task<BlobInfo?> StatAsync(string key, CancellationToken cancellationToken = default)
    {
        try
        {
            var stat = await _client.StatObjectAsync(new StatObjectArgs().WithBucket(Bucket).WithObject(key), cancellationToken);
            return new BlobInfo(stat.Size, stat.ETag);
        }
        catch (ObjectNotFoundException)
        {
            return null;
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Unavailable("stat", e);
        }
    }

    public async Task<bool> CopyToAsync(string key, Stream destination, CancellationToken cancellationToken = default)
    {
        try
        {
            await _client.GetObjectAsync(new GetObjectArgs()
                .WithBucket(Bucket)
                .WithObject(key)
                .WithCallbackStream((body, ct) => body.CopyToAsync(destination, ct)), cancellationToken);
            return true;
        }
        catch (ObjectNotFoundException)
        {
            return false;
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Unavailable("read", e);
        }
    }

    public async Task PutAsync(string key, Stream content, long length, CancellationToken cancellationToken = default)
    {
        try
        {
            // A known size lets the SDK choose single-part or multipart without buffering the whole object.
            await _client.PutObjectAsync(new PutObjectArgs()
                .WithBucket(Bucket)
                .WithObject(key)
                .WithStreamData(content)
                .WithObjectSize(length)
                .WithContentType("application/octet-stream"), cancellationToken);
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Unavailable("write", e);
        }
    }

    public async Task DeleteAsync(string key, CancellationToken cancellationToken = default)
    {
        try
        {
            await _client.RemoveObjectAsync(new RemoveObjectArgs().WithBucket(Bucket).WithObject(key), cancellationToken);
        }
        catch (ObjectNotFoundException)
        {
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Unavailable("delete", e);
        }
    }

    private static bool IsStoreFailure(Exception e) => e is MinioException or HttpRequestException or IOException or TimeoutException
        || (e is TaskCanceledException && e.InnerException is TimeoutException);

    private BlobStoreUnavailableException Unavailable(string operation, Exception e) =>
        new($"S3 {operation} in bucket '{Bucket}' at {Settings.Endpoint} failed: {e.GetType().Name}", e);

    public void Dispose()
    {
        _client.Dispose();
        _http.Dispose();
    }
}
