using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Xml.Linq;
using Minio;
using Minio.DataModel.Args;
using Minio.Exceptions;

namespace EphemeralCI.Cache.Storage;

/// <summary>
/// Cache objects in one S3 bucket through the Minio SDK (MinIO, or any S3 API).
/// Whole-object reads and writes, stat, delete and presigned GETs go through the SDK; ranged GETs and
/// multipart uploads through <see cref="S3RequestSigner"/> on the same HttpClient, because Minio 7.0.0 keeps
/// its multipart calls private and its GetObject with an offset throws PartialContentException.
/// Nothing here lists the bucket: the S3 emulator our tests use answers ListObjects malformed.
/// </summary>
public sealed class S3BlobStore : IBlobStore, IMultipartBlobStore, IDirectDownloadStore, IDisposable
{
    // Whole-object transfers of up to Cache:MaxObjectBytes go through one request (GET) or large
    // parts (PUT); HttpClient's 100 s default would cut them off on a slow link. Aborted requests
    // still stop at once through their cancellation tokens.
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromMinutes(30);

    // Large writes to the response: each one is a flush through Kestrel and a copy into the hash check's held-back piece.
    private const int CopyBufferSize = 1024 * 1024;

    private readonly HttpClient _http;
    private readonly IMinioClient _client;
    private readonly S3RequestSigner _signer;

    public S3BlobStore(S3Settings settings, TimeProvider? clock = null)
    {
        Settings = settings;
        _signer = new S3RequestSigner(settings, clock ?? TimeProvider.System);
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
                .WithCallbackStream((body, ct) => OverlappedCopy.CopyAsync(body, destination, CopyBufferSize, ct)), cancellationToken);
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

    public async Task<bool> CopyRangeToAsync(string key, long offset, long length, Stream destination, CancellationToken cancellationToken = default)
    {
        if (length == 0) return await StatAsync(key, cancellationToken) is not null;
        using var request = new HttpRequestMessage(HttpMethod.Get, _signer.ObjectUri(key));
        request.Headers.Range = new RangeHeaderValue(offset, offset + length - 1);
        _signer.Sign(request);
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (response.StatusCode == HttpStatusCode.NotFound) return false;
            if (response.StatusCode != HttpStatusCode.PartialContent) throw await FailureAsync("ranged read", response, cancellationToken);
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            await OverlappedCopy.CopyAsync(body, destination, CopyBufferSize, cancellationToken);
            return true;
        }
        catch (HttpRequestException e)
        {
            throw Unavailable("ranged read", e);
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

    public long MinPartBytes => 5L << 20;

    public int MaxPartNumber => 10_000;

    public async Task<string> StartMultipartAsync(string key, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, _signer.ObjectUri(key, new Dictionary<string, string> { ["uploads"] = "" }))
        {
            Content = new ByteArrayContent([]),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        var xml = await SendForXmlAsync(request, "start multipart upload", cancellationToken);
        return xml.Descendants().FirstOrDefault(e => e.Name.LocalName == "UploadId")?.Value is { Length: > 0 } uploadId
            ? uploadId
            : throw new BlobStoreUnavailableException($"S3 start multipart upload in bucket '{Bucket}' at {Settings.Endpoint} answered without an UploadId.");
    }

    public async Task<string> UploadPartAsync(string key, string uploadId, int partNumber, Stream content, long length, CancellationToken cancellationToken = default)
    {
        var uri = _signer.ObjectUri(key, new Dictionary<string, string>
        {
            ["partNumber"] = partNumber.ToString(CultureInfo.InvariantCulture),
            ["uploadId"] = uploadId,
        });
        var body = new StreamContent(content, 128 * 1024);
        body.Headers.ContentLength = length;
        using var request = new HttpRequestMessage(HttpMethod.Put, uri) { Content = body };
        _signer.Sign(request);
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!response.IsSuccessStatusCode) throw await FailureAsync("upload part", response, cancellationToken);
            return response.Headers.ETag?.Tag ?? (response.Headers.TryGetValues("ETag", out var tags) ? tags.First() : null)
                ?? throw new BlobStoreUnavailableException($"S3 upload part in bucket '{Bucket}' at {Settings.Endpoint} answered without an ETag.");
        }
        catch (HttpRequestException e)
        {
            throw Unavailable("upload part", e);
        }
    }

    public async Task CompleteMultipartAsync(string key, string uploadId, IReadOnlyList<BlobPart> parts, CancellationToken cancellationToken = default)
    {
        var list = new XElement("CompleteMultipartUpload", parts.Select(p =>
            new XElement("Part", new XElement("PartNumber", p.PartNumber.ToString(CultureInfo.InvariantCulture)), new XElement("ETag", p.ETag))));
        using var request = new HttpRequestMessage(HttpMethod.Post, _signer.ObjectUri(key, new Dictionary<string, string> { ["uploadId"] = uploadId }))
        {
            Content = new StringContent(list.ToString(SaveOptions.DisableFormatting), Encoding.UTF8, "application/xml"),
        };
        // S3 may answer 200 and still report an error in the body (a long-running complete that failed).
        var xml = await SendForXmlAsync(request, "complete multipart upload", cancellationToken);
        if (xml.Root?.Name.LocalName == "Error") throw Rejected(xml);
    }

    public async Task AbortMultipartAsync(string key, string uploadId, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, _signer.ObjectUri(key, new Dictionary<string, string> { ["uploadId"] = uploadId }));
        _signer.Sign(request);
        try
        {
            using var response = await _http.SendAsync(request, cancellationToken);
            if (response.IsSuccessStatusCode || response.StatusCode == HttpStatusCode.NotFound) return;
            throw await FailureAsync("abort multipart upload", response, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            throw Unavailable("abort multipart upload", e);
        }
    }

    public Task<string> PresignGetAsync(string key, TimeSpan lifetime, CancellationToken cancellationToken = default) =>
        _client.PresignedGetObjectAsync(new PresignedGetObjectArgs().WithBucket(Bucket).WithObject(key).WithExpiry((int)Math.Ceiling(lifetime.TotalSeconds)));

    private async Task<XDocument> SendForXmlAsync(HttpRequestMessage request, string operation, CancellationToken cancellationToken)
    {
        _signer.Sign(request);
        try
        {
            using var response = await _http.SendAsync(request, cancellationToken);
            if (!response.IsSuccessStatusCode) throw await FailureAsync(operation, response, cancellationToken);
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            return XDocument.Parse(text);
        }
        catch (HttpRequestException e)
        {
            throw Unavailable(operation, e);
        }
        catch (System.Xml.XmlException e)
        {
            throw Unavailable(operation, e);
        }
    }

    /// <summary>What S3 said: a refusal of the part list (the caller falls back), or the store being unusable (503).</summary>
    private async Task<Exception> FailureAsync(string operation, HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        XDocument? xml = null;
        try
        {
            if (text.Length > 0) xml = XDocument.Parse(text);
        }
        catch (System.Xml.XmlException)
        {
        }
        if (xml is not null && response.StatusCode == HttpStatusCode.BadRequest) return Rejected(xml);
        var code = xml?.Descendants().FirstOrDefault(e => e.Name.LocalName == "Code")?.Value;
        return new BlobStoreUnavailableException($"S3 {operation} in bucket '{Bucket}' at {Settings.Endpoint} failed: HTTP {(int)response.StatusCode} {code}");
    }

    private static MultipartRejectedException Rejected(XDocument error) =>
        new($"S3 refused the parts: {error.Descendants().FirstOrDefault(e => e.Name.LocalName == "Code")?.Value} {error.Descendants().FirstOrDefault(e => e.Name.LocalName == "Message")?.Value}");

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
