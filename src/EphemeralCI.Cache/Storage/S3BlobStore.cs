using System.Net;
using System.Net.Http.Headers;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using EphemeralCI.Cache.Entries;

namespace EphemeralCI.Cache.Storage;

/// <summary>
/// Cache objects in one S3 bucket (MinIO, or any S3 API) through the AWS SDK: signing, bucket and object calls,
/// multipart uploads, ranged reads and presigned URLs are the SDK's; only the bodies of objects and parts are
/// streamed by this class, to URLs the SDK presigned (see <see cref="PutBodyAsync"/>). Nothing here lists the
/// bucket: the S3 emulator our tests use answers ListObjects malformed.
/// </summary>
public sealed class S3BlobStore : IBlobStore, IMultipartBlobStore, IDirectDownloadStore, IDisposable
{
    // Whole-object transfers of up to Cache:MaxObjectBytes go through one request (GET) or large
    // parts (PUT); HttpClient's 100 s default would cut them off on a slow link. Aborted requests
    // still stop at once through their cancellation tokens.
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromMinutes(30);

    // Large writes to the response: each one is a flush through Kestrel and a copy into the hash check's held-back piece.
    private const int CopyBufferSize = 1024 * 1024;

    private const string OctetStream = "application/octet-stream";

    // PutAsync sends objects up to this size in one PUT and larger ones as parts of (at least) this size, each
    // streamed from the caller's stream as it is read: no part is buffered, and a failed part fails the write.
    internal const long PutPartBytes = 16L << 20;

    // A body PUT to a presigned URL must start within this; S3 checks the signature when the request arrives.
    private static readonly TimeSpan PutUrlLifetime = TimeSpan.FromMinutes(15);

    private readonly AmazonS3Client _client;
    private readonly HttpClient _http;
    private readonly TimeProvider _clock;

    public S3BlobStore(S3Settings settings, TimeProvider? clock = null)
    {
        Settings = settings;
        _clock = clock ?? TimeProvider.System;
        // Credentials given, never looked up (no environment, profile file or instance metadata).
        _client = new AmazonS3Client(new BasicAWSCredentials(settings.AccessKey, settings.SecretKey), ClientConfig(settings));
        _http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = RequestTimeout };
    }

    public S3Settings Settings { get; }
    public string Bucket => Settings.Bucket;

    /// <summary>
    /// The SDK's defaults are AWS's: virtual-host buckets, a region looked up from the environment (or EC2's
    /// metadata service), CRC checksums added to every upload and checked on every download. None of that fits
    /// MinIO or an emulator at a fixed URL, so everything the endpoint needs is given here and nothing is looked up.
    /// </summary>
    internal static AmazonS3Config ClientConfig(S3Settings settings) => new()
    {
        ServiceURL = settings.Endpoint.ToString(),
        ForcePathStyle = true,
        AuthenticationRegion = settings.Region,
        // Not the "auto" mode, which asks EC2's metadata service where it runs.
        DefaultConfigurationMode = DefaultConfigurationMode.Standard,
        // Checksums only where S3 demands them: MinIO versions and emulators differ in the trailing-checksum
        // uploads SDK v4 sends by default, and the cache checks every archive's SHA-256 itself.
        RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
        ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        Timeout = RequestTimeout,
    };

    public async Task<bool> BucketExistsAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await _client.HeadBucketAsync(new HeadBucketRequest { BucketName = Bucket }, cancellationToken);
            return true;
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    /// <summary>Creates the bucket unless it exists; a concurrent creator (another replica) is not an error.</summary>
    public async Task<bool> EnsureBucketAsync(CancellationToken cancellationToken = default)
    {
        if (await BucketExistsAsync(cancellationToken)) return false;
        try
        {
            var request = new PutBucketRequest { BucketName = Bucket };
            // us-east-1 is the one region S3 wants no location constraint for.
            if (Settings.Region != S3Settings.DefaultRegion) request.BucketRegionName = Settings.Region;
            await _client.PutBucketAsync(request, cancellationToken);
            return true;
        }
        catch (AmazonS3Exception)
        {
            if (await BucketExistsAsync(cancellationToken)) return false;
            throw;
        }
    }

    public async Task<BlobInfo?> StatAsync(string key, CancellationToken cancellationToken = default)
    {
        try
        {
            var stat = await _client.GetObjectMetadataAsync(Bucket, key, cancellationToken);
            return new BlobInfo(stat.ContentLength, stat.ETag);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
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
            using var response = await _client.GetObjectAsync(Bucket, key, cancellationToken);
            await OverlappedCopy.CopyAsync(response.ResponseStream, destination, CopyBufferSize, cancellationToken);
            return true;
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Unavailable("read", e);
        }
    }

    public async Task<bool> CopyRangeToAsync(string key, long offset, long length, Stream destination, CancellationToken cancellationToken = default)
    {
        if (length == 0) return await StatAsync(key, cancellationToken) is not null;
        try
        {
            using var response = await _client.GetObjectAsync(new GetObjectRequest
            {
                BucketName = Bucket,
                Key = key,
                ByteRange = new ByteRange(offset, offset + length - 1),
            }, cancellationToken);
            // A store that ignored the range would send the whole object from its start.
            if (response.HttpStatusCode != HttpStatusCode.PartialContent)
            {
                throw new BlobStoreUnavailableException($"S3 ranged read in bucket '{Bucket}' at {Settings.Endpoint} answered HTTP {(int)response.HttpStatusCode}, not 206.");
            }
            await OverlappedCopy.CopyAsync(response.ResponseStream, destination, CopyBufferSize, cancellationToken);
            return true;
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Unavailable("ranged read", e);
        }
    }

    public async Task PutAsync(string key, Stream content, long length, CancellationToken cancellationToken = default)
    {
        if (length <= PutPartBytes)
        {
            await PutBodyAsync(new GetPreSignedUrlRequest { Key = key, ContentType = OctetStream }, content, length, "write", cancellationToken);
            return;
        }

        // Not the SDK's TransferUtility: it uploads a non-seekable stream (ours: spooled files hashed as they are
        // read) without passing on the cancellation token, and closes it; the parts go through this store's calls.
        var partBytes = Math.Max(PutPartBytes, (length + MaxPartNumber - 1) / MaxPartNumber);
        var uploadId = await StartMultipartAsync(key, cancellationToken);
        try
        {
            var parts = new List<BlobPart>();
            for (long sent = 0; sent < length; sent += partBytes)
            {
                var size = Math.Min(partBytes, length - sent);
                parts.Add(new BlobPart(parts.Count + 1, await UploadPartAsync(key, uploadId, parts.Count + 1, content, size, cancellationToken)));
            }
            await CompleteMultipartAsync(key, uploadId, parts, cancellationToken);
        }
        catch (Exception e)
        {
            try
            {
                await AbortMultipartAsync(key, uploadId, CancellationToken.None);
            }
            catch (BlobStoreUnavailableException)
            {
                // Parts left behind cost space, not correctness: a bucket lifecycle rule for incomplete uploads removes them.
            }
            if (e is MultipartRejectedException) throw Unavailable("write", e);
            throw;
        }
    }

    public async Task DeleteAsync(string key, CancellationToken cancellationToken = default)
    {
        try
        {
            await _client.DeleteObjectAsync(Bucket, key, cancellationToken);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Unavailable("delete", e);
        }
    }

    public long MinPartBytes => 5L << 20;

    public int MaxPartNumber => 10_000;

    public async Task<string> StartMultipartAsync(string key, CancellationToken cancellationToken = default)
    {
        try
        {
            var response = await _client.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest
            {
                BucketName = Bucket,
                Key = key,
                ContentType = OctetStream,
            }, cancellationToken);
            return response.UploadId is { Length: > 0 } uploadId
                ? uploadId
                : throw new BlobStoreUnavailableException($"S3 start multipart upload in bucket '{Bucket}' at {Settings.Endpoint} answered without an UploadId.");
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Unavailable("start multipart upload", e);
        }
    }

    public async Task<string> UploadPartAsync(string key, string uploadId, int partNumber, Stream content, long length, CancellationToken cancellationToken = default) =>
        await PutBodyAsync(new GetPreSignedUrlRequest { Key = key, UploadId = uploadId, PartNumber = partNumber }, content, length, "upload part", cancellationToken)
        ?? throw new BlobStoreUnavailableException($"S3 upload part in bucket '{Bucket}' at {Settings.Endpoint} answered without an ETag.");

    public async Task CompleteMultipartAsync(string key, string uploadId, IReadOnlyList<BlobPart> parts, CancellationToken cancellationToken = default)
    {
        try
        {
            await _client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
            {
                BucketName = Bucket,
                Key = key,
                UploadId = uploadId,
                PartETags = parts.Select(p => new PartETag(p.PartNumber, p.ETag)).ToList(),
            }, cancellationToken);
        }
        // A refusal of the list (InvalidPart, EntityTooSmall, ...): 400, or an error in a 200 (a long-running complete that failed).
        catch (AmazonS3Exception e) when (e.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.OK)
        {
            throw new MultipartRejectedException($"S3 refused the parts: {e.ErrorCode} {e.Message}");
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Unavailable("complete multipart upload", e);
        }
    }

    public async Task AbortMultipartAsync(string key, string uploadId, CancellationToken cancellationToken = default)
    {
        try
        {
            await _client.AbortMultipartUploadAsync(Bucket, key, uploadId, cancellationToken);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Unavailable("abort multipart upload", e);
        }
    }

    public Task<string> PresignGetAsync(string key, TimeSpan lifetime, CancellationToken cancellationToken = default) =>
        PresignAsync(new GetPreSignedUrlRequest { Key = key, Verb = HttpVerb.GET }, TimeSpan.FromSeconds(Math.Ceiling(lifetime.TotalSeconds)));

    private Task<string> PresignAsync(GetPreSignedUrlRequest request, TimeSpan lifetime)
    {
        request.BucketName = Bucket;
        // The SDK would write https:// for any endpoint.
        request.Protocol = Settings.UseSsl ? Protocol.HTTPS : Protocol.HTTP;
        request.Expires = (_clock.GetUtcNow() + lifetime).UtcDateTime;
        return _client.GetPreSignedURLAsync(request);
    }

    /// <summary>
    /// Streams exactly <paramref name="length"/> bytes (an object or a part) to a URL the SDK presigned; returns the ETag.
    /// Not the SDK's PutObject/UploadPart: over plain HTTP (MinIO in a cluster, our tests' emulator) it will not send
    /// <c>UNSIGNED-PAYLOAD</c> and signs the body as aws-chunked instead, which costs a SHA-256 pass over every byte
    /// (the cache checks each archive's SHA-256 itself) and which the S3 emulator stores verbatim, framing included.
    /// A presigned URL carries an unsigned payload on either scheme. The caller's stream is left open.
    /// </summary>
    private async Task<string?> PutBodyAsync(GetPreSignedUrlRequest target, Stream content, long length, string operation, CancellationToken cancellationToken)
    {
        target.Verb = HttpVerb.PUT;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Put, await PresignAsync(target, PutUrlLifetime))
            {
                Content = new StreamContent(new NextBytes(content, length), 128 * 1024),
            };
            request.Content.Headers.ContentLength = length;
            if (target.ContentType is { } type) request.Content.Headers.ContentType = new MediaTypeHeaderValue(type);
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            return response.StatusCode switch
            {
                _ when response.IsSuccessStatusCode => response.Headers.ETag?.Tag ?? (response.Headers.TryGetValues("ETag", out var tags) ? tags.First() : null),
                // A part S3 will not take (too large, a bad upload id): the caller stores the object another way.
                HttpStatusCode.BadRequest when target.UploadId is not null => throw new MultipartRejectedException($"S3 refused part {target.PartNumber}: HTTP 400"),
                _ => throw new BlobStoreUnavailableException($"S3 {operation} in bucket '{Bucket}' at {Settings.Endpoint} failed: HTTP {(int)response.StatusCode}"),
            };
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Unavailable(operation, e);
        }
    }

    private static bool IsStoreFailure(Exception e) => e is AmazonServiceException or AmazonClientException or HttpRequestException or IOException or TimeoutException
        || (e is TaskCanceledException && e.InnerException is TimeoutException);

    private BlobStoreUnavailableException Unavailable(string operation, Exception e) =>
        new($"S3 {operation} in bucket '{Bucket}' at {Settings.Endpoint} failed: {(e as AmazonServiceException)?.ErrorCode ?? e.GetType().Name}", e);

    public void Dispose()
    {
        _client.Dispose();
        _http.Dispose();
    }

    /// <summary>The next <c>length</c> bytes of a stream read in order, without closing it: one part of a larger upload.</summary>
    private sealed class NextBytes(Stream inner, long length) : ForwardReadStream
    {
        public override long Length => length;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (Count >= length) return 0;
            var read = await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, length - Count)], cancellationToken);
            Count += read;
            return read;
        }
    }
}
