using EphemeralCI.Contracts.Runner;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Polly;
using Polly.Retry;

namespace EphemeralCI.RunnerAgent.Caching;

/// <summary>A cache hit: where to download it from, and what the whole archive must hash to.</summary>
/// <param name="DirectUrl">A presigned URL of the object store, when the cache offers one (<c>Cache:DirectDownloads</c>).</param>
public sealed record CacheHit(string MatchedKey, string DownloadUrl, string? Sha256 = null, long? SizeBytes = null, string? DirectUrl = null, string? Scope = null);

/// <summary>
/// The agent's side of the cache: the same v2 protocol the Actions toolkit speaks (Twirp lookup, reserve,
/// finalize; Azure block-blob upload and GETs on the signed URLs). Signed URLs are followed by path and query
/// over this client's own connection, so they also work through the Unix socket the sandbox may reach the cache
/// by. Large archives go up as blocks, <see cref="Parallelism"/> at a time, each retried on failure (a block id
/// makes a retry idempotent), and come down as byte ranges in parallel, each resumed from where it stopped. The
/// archive's SHA-256 from the lookup is checked before anything is extracted.
/// </summary>
public sealed class CacheServiceClient(HttpClient http, string token) : IDisposable
{
    public const string CacheSocketVariable = RunnerEnvironment.CacheSocket;
    public const string CacheUrlVariable = RunnerEnvironment.CacheUrl;
    private const string Twirp = "twirp/github.actions.results.api.v1.CacheService/";
    private const int BufferSize = 128 * 1024;

    private HttpClient? _direct;

    /// <summary>Blocks of this size above it; one Put Blob below (as the toolkit's 128 MiB single shot, smaller to bound retries).</summary>
    public int BlockSize { get; init; } = 32 * 1024 * 1024;

    /// <summary>Blocks uploaded, or ranges downloaded, at the same time; 1 downloads in one stream.</summary>
    public int Parallelism { get; init; } = 4;

    /// <summary>Archives from this size on are downloaded in <see cref="RangeSize"/> ranges.</summary>
    public long RangeThreshold { get; init; } = 64L * 1024 * 1024;

    public int RangeSize { get; init; } = 32 * 1024 * 1024;

    /// <summary>Attempts per block or range (the first and the retries) before the transfer fails.</summary>
    public int Attempts { get; init; } = 3;

    private ResiliencePipeline? _retryPipeline;

    /// <summary>Transient failures (see <see cref="IsTransient"/>) are tried again, with growing pauses, up to <see cref="Attempts"/> in all.</summary>
    private ResiliencePipeline _retry => _retryPipeline ??= new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
    {
        ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } e && IsTransient(e) && !args.Context.CancellationToken.IsCancellationRequested),
        MaxRetryAttempts = Math.Max(0, Attempts - 1),
        BackoffType = DelayBackoffType.Exponential,
        UseJitter = true,
        Delay = TimeSpan.FromMilliseconds(200),
    }).Build();

    /// <summary>Use a presigned store URL when the cache offers one (falls back to the cache's URL if it cannot be reached).</summary>
    public bool UseDirectDownloads { get; init; } = true;

    /// <summary>Null when the sandbox has no way to the cache (neither variable set): caches are then skipped.</summary>
    public static CacheServiceClient? FromEnvironment(string token) => HttpFromEnvironment() is { } http ? new CacheServiceClient(http, token) : null;

    /// <summary>A client of the cache service (its socket relay, else its URL), or null when the sandbox has no way to it.</summary>
    public static HttpClient? HttpFromEnvironment()
    {
        var socket = Environment.GetEnvironmentVariable(CacheSocketVariable);
        // The provisioner binds the socket only where a cache is configured.
        if (!string.IsNullOrEmpty(socket) && File.Exists(socket)) return UnixSocketHttp.Create(socket, new Uri("http://cache/"));
        var url = Environment.GetEnvironmentVariable(CacheUrlVariable);
        return string.IsNullOrEmpty(url) ? null : new HttpClient { BaseAddress = new Uri(url.EndsWith('/') ? url : url + "/") };
    }

    /// <summary>Calls to the cache service join the job's trace (see <see cref="AgentTrace"/>); presigned store URLs do not carry it.</summary>
    public void JoinTrace(string? traceParent) => AgentTrace.Join(http, traceParent);

    /// <summary>The hit, or null on a miss.</summary>
    public async Task<CacheHit?> LookupAsync(string key, IReadOnlyList<string> restoreKeys, string version, CancellationToken ct)
    {
        var response = await CallAsync("GetCacheEntryDownloadURL", new LookupRequest(key, restoreKeys, version), CacheJsonContext.Default.LookupRequest, CacheJsonContext.Default.LookupResponse, ct);
        if (!response.Ok) return null;
        var size = long.TryParse(response.SizeBytes, NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s : (long?)null;
        return new CacheHit(response.MatchedKey, response.SignedDownloadUrl, string.IsNullOrEmpty(response.Sha256) ? null : response.Sha256, size,
            string.IsNullOrEmpty(response.DirectDownloadUrl) ? null : response.DirectDownloadUrl, string.IsNullOrEmpty(response.Scope) ? null : response.Scope);
    }

    /// <summary>
    /// Downloads the hit to <paramref name="destinationFile"/> and checks its SHA-256 from the lookup (a cache that sends
    /// none checks whole downloads itself; ranges and direct URLs are only used when it sent one). With the SHA-256 in hand
    /// even one stream is fetched with <see cref="ClientVerifiesHeader"/>, so the cache does not hash every byte as well.
    /// A mismatch is retried once as one plain GET through the cache, which checks the object itself and quarantines it
    /// if it is corrupted; a mismatch there fails the restore.
    /// </summary>
    public async Task DownloadAsync(CacheHit hit, string destinationFile, CancellationToken ct)
    {
        var serviceUrl = new Uri(Relative(hit.DownloadUrl), UriKind.Relative);
        var mismatch = false;
        if (UseDirectDownloads && hit.DirectUrl is { } direct && hit.Sha256 is not null)
        {
            try
            {
                _direct ??= new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
                var sha = await DownloadFromAsync(_direct, new Uri(direct, UriKind.Absolute), hit, destinationFile, ct);
                if (sha == hit.Sha256) return;
                mismatch = true; // the object itself: only the cache's checked GET can say so (and quarantine it)
            }
            catch (HttpRequestException)
            {
                // The store is not reachable from here (or refused the URL): the cache's own URL still is.
            }
        }
        if (!mismatch)
        {
            var received = await DownloadFromAsync(http, serviceUrl, hit, destinationFile, ct);
            if (hit.Sha256 is null || received == hit.Sha256) return;
        }
        if (await DownloadWholeAsync(http, serviceUrl, hit.SizeBytes, destinationFile, verifiedHere: false, ct) == hit.Sha256) return;
        throw new CacheServiceException($"the downloaded archive does not hash to the SHA-256 the cache recorded ({hit.Sha256}); not extracting it");
    }

    /// <summary>Downloads from <paramref name="url"/> in ranges or in one stream; returns the file's SHA-256.</summary>
    private async Task<string?> DownloadFromAsync(HttpClient client, Uri url, CacheHit hit, string destinationFile, CancellationToken ct)
    {
        if (Parallelism > 1 && hit.SizeBytes is { } size && size >= RangeThreshold && hit.Sha256 is not null)
        {
            return await DownloadRangesAsync(client, url, size, destinationFile, ct);
        }
        return await DownloadWholeAsync(client, url, hit.SizeBytes, destinationFile, verifiedHere: hit.Sha256 is not null, ct);
    }

    /// <summary>Tells the cache this client checks the whole archive's SHA-256 itself (the cache's <c>BlobTransferApi.ClientVerifiesHeader</c>).</summary>
    internal const string ClientVerifiesHeader = "EphemeralCI-Client-Verifies";

    /// <summary>
    /// One stream, hashed as it is written; a broken connection resumes with a Range from the bytes already there.
    /// With <paramref name="verifiedHere"/> (the caller compares the hash) the cache is told not to check it as well.
    /// </summary>
    private async Task<string> DownloadWholeAsync(HttpClient client, Uri url, long? size, string destinationFile, bool verifiedHere, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await using var file = new FileStream(destinationFile, FileMode.Create, FileAccess.Write, FileShare.None, BufferSize, FileOptions.Asynchronous);
        long? expected = size;
        return await _retry.ExecuteAsync(async token =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            if (file.Length > 0) request.Headers.Range = new RangeHeaderValue(file.Length, null);
            if (verifiedHere) request.Headers.Add(ClientVerifiesHeader, "sha-256");
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, token);
            await EnsureAsync(response, "download", token);
            if (file.Length > 0 && response.StatusCode != HttpStatusCode.PartialContent)
            {
                // The server sent the whole archive again: take it from the start.
                file.SetLength(0);
                hash.GetHashAndReset();
                expected = size;
            }
            expected ??= response.Content.Headers.ContentLength + file.Length;
            await using var body = await response.Content.ReadAsStreamAsync(token);
            var buffer = new byte[BufferSize];
            int read;
            while ((read = await body.ReadAsync(buffer, token)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                await file.WriteAsync(buffer.AsMemory(0, read), token);
            }
            // The cache withholds the end of a corrupted archive: a short body means "do not extract".
            if (expected is { } total && file.Length != total)
            {
                throw new CacheServiceException($"the download ended after {file.Length} of {total} bytes (the cache refused a corrupted entry)");
            }
            return Convert.ToHexStringLower(hash.GetCurrentHash());
        }, ct);
    }

    /// <summary>
    /// The archive in <see cref="RangeSize"/> ranges, <see cref="Parallelism"/> at a time, each written at its offset and
    /// resumed where it broke off. Finished ranges are hashed in file order while later ones still download (read back
    /// from the page cache), so no pass over the whole file is left for the end. Returns the file's SHA-256.
    /// </summary>
    private async Task<string> DownloadRangesAsync(HttpClient client, Uri url, long size, string destinationFile, CancellationToken ct)
    {
        using var handle = File.OpenHandle(destinationFile, FileMode.Create, FileAccess.ReadWrite, FileShare.None, FileOptions.Asynchronous, preallocationSize: size);
        var ranges = new List<(long From, long Length)>();
        for (long from = 0; from < size; from += RangeSize) ranges.Add((from, Math.Min(RangeSize, size - from)));
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var done = new bool[ranges.Count];
        var hashed = 0;
        var hashing = false;
        var gate = new Lock();

        // Whoever finishes the range at the cursor hashes it and every finished one after it; one hasher at a time.
        async Task HashFinishedAsync(CancellationToken token)
        {
            var buffer = new byte[BufferSize];
            while (true)
            {
                int index;
                lock (gate)
                {
                    if (hashing || hashed >= ranges.Count || !done[hashed]) return;
                    hashing = true;
                    index = hashed;
                }
                var complete = false;
                try
                {
                    var (from, length) = ranges[index];
                    for (long at = 0; at < length;)
                    {
                        var read = await RandomAccess.ReadAsync(handle, buffer.AsMemory(0, (int)Math.Min(buffer.Length, length - at)), from + at, token);
                        if (read == 0) throw new IOException($"the downloaded file ends at {from + at} of {size} bytes");
                        hash.AppendData(buffer, 0, read);
                        at += read;
                    }
                    complete = true;
                }
                finally
                {
                    lock (gate)
                    {
                        hashing = false;
                        if (complete) hashed = index + 1;
                    }
                }
            }
        }

        await Parallel.ForEachAsync(Enumerable.Range(0, ranges.Count), new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = ct }, async (index, token) =>
        {
            var range = ranges[index];
            long received = 0;
            var buffer = new byte[BufferSize];
            await _retry.ExecuteAsync(async attemptToken =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, url);
                request.Headers.Range = new RangeHeaderValue(range.From + received, range.From + range.Length - 1);
                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, attemptToken);
                await EnsureAsync(response, "download", attemptToken);
                if (response.StatusCode != HttpStatusCode.PartialContent) throw new CacheServiceException($"the server answered a range request with HTTP {(int)response.StatusCode}", (int)response.StatusCode);
                await using var body = await response.Content.ReadAsStreamAsync(attemptToken);
                int read;
                while (received < range.Length && (read = await body.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, range.Length - received)), attemptToken)) > 0)
                {
                    await RandomAccess.WriteAsync(handle, buffer.AsMemory(0, read), range.From + received, attemptToken);
                    received += read;
                }
                if (received != range.Length) throw new IOException($"range at {range.From} ended after {received} of {range.Length} bytes");
            }, token);
            lock (gate) done[index] = true;
            await HashFinishedAsync(token);
        });
        // The last finisher may have found another hasher busy; whatever is left is hashed here.
        await HashFinishedAsync(ct);
        lock (gate)
        {
            if (hashed != ranges.Count) throw new IOException("not every range of the download was hashed");
        }
        return Convert.ToHexStringLower(hash.GetCurrentHash());
    }

    /// <summary>Reserves, uploads and commits; false when the entry already exists or another job is saving it.</summary>
    public async Task<bool> SaveAsync(string key, string version, string archiveFile, string sha256, CancellationToken ct)
    {
        using var reserve = await PostAsync("CreateCacheEntry", new CreateRequest(key, version), CacheJsonContext.Default.CreateRequest, ct);
        if (reserve.StatusCode == HttpStatusCode.Conflict) return false;
        await EnsureAsync(reserve, "reserve", ct);
        var uploadUrl = (await reserve.Content.ReadFromJsonAsync(CacheJsonContext.Default.CreateResponse, ct))!.SignedUploadUrl;

        var length = new FileInfo(archiveFile).Length;
        if (length <= BlockSize) await WithRetriesAsync(() => PutAsync(uploadUrl, "", archiveFile, 0, length, ct), ct);
        else await PutBlocksAsync(uploadUrl, archiveFile, length, ct);

        await CallAsync("FinalizeCacheEntryUpload", new FinalizeRequest(key, version, length.ToString(CultureInfo.InvariantCulture), sha256),
            CacheJsonContext.Default.FinalizeRequest, CacheJsonContext.Default.FinalizeResponse, ct);
        return true;
    }

    private async Task PutBlocksAsync(string uploadUrl, string archiveFile, long length, CancellationToken ct)
    {
        // Ids end in the block's index: the cache reads it as the S3 part number, so parts land in order whatever order they arrive in.
        var blocks = new List<(string Id, long Offset)>();
        for (long offset = 0, n = 0; offset < length; offset += BlockSize, n++)
        {
            blocks.Add((Convert.ToBase64String(Encoding.ASCII.GetBytes(n.ToString("D8", CultureInfo.InvariantCulture))), offset));
        }
        await Parallel.ForEachAsync(blocks, new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = ct }, async (block, token) =>
            await WithRetriesAsync(() => PutAsync(uploadUrl, $"&comp=block&blockid={Uri.EscapeDataString(block.Id)}", archiveFile, block.Offset,
                Math.Min(BlockSize, length - block.Offset), token), token));
        var xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>" + string.Concat(blocks.Select(b => $"<Latest>{b.Id}</Latest>")) + "</BlockList>";
        await WithRetriesAsync(async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Put, Relative(uploadUrl) + "&comp=blocklist") { Content = new StringContent(xml, Encoding.UTF8, "application/xml") };
            using var response = await http.SendAsync(request, ct);
            await EnsureAsync(response, "commit blocks", ct);
        }, ct);
    }

    private async Task PutAsync(string uploadUrl, string extraQuery, string archiveFile, long offset, long count, CancellationToken ct)
    {
        await using var file = new FileStream(archiveFile, FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize, FileOptions.Asynchronous);
        file.Position = offset;
        var content = new StreamContent(new BoundedStream(file, count), BufferSize);
        content.Headers.ContentLength = count;
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var request = new HttpRequestMessage(HttpMethod.Put, Relative(uploadUrl) + extraQuery) { Content = content };
        request.Headers.TryAddWithoutValidation("x-ms-blob-type", "BlockBlob");
        using var response = await http.SendAsync(request, ct);
        await EnsureAsync(response, "upload", ct);
    }

    /// <summary>Runs <paramref name="operation"/> up to <see cref="Attempts"/> times while it fails in a way worth retrying.</summary>
    private Task WithRetriesAsync(Func<Task> operation, CancellationToken ct) => _retry.ExecuteAsync(async _ => await operation(), ct).AsTask();

    /// <summary>Connection trouble and 5xx/408/429 are worth another try; a 4xx refusal is not.</summary>
    private static bool IsTransient(Exception e) => e switch
    {
        HttpRequestException or IOException => true,
        TaskCanceledException { InnerException: TimeoutException } => true,
        CacheServiceException { StatusCode: null or >= 500 or 408 or 429 } => true,
        _ => false,
    };


    private async Task<TResponse> CallAsync<TRequest, TResponse>(string method, TRequest body, JsonTypeInfo<TRequest> requestType, JsonTypeInfo<TResponse> responseType, CancellationToken ct)
    {
        using var response = await PostAsync(method, body, requestType, ct);
        await EnsureAsync(response, method, ct);
        return (await response.Content.ReadFromJsonAsync(responseType, ct))!;
    }

    private async Task<HttpResponseMessage> PostAsync<TRequest>(string method, TRequest body, JsonTypeInfo<TRequest> type, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, Twirp + method) { Content = JsonContent.Create(body, type) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await http.SendAsync(request, ct);
    }

    private static async Task EnsureAsync(HttpResponseMessage response, string what, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode) return;
        var detail = await response.Content.ReadAsStringAsync(ct);
        throw new CacheServiceException($"cache {what} failed: HTTP {(int)response.StatusCode} {(detail.Length > 300 ? detail[..300] : detail)}", (int)response.StatusCode);
    }

    /// <summary>Only path and query: the signed URL's host is the cache as the cache saw itself, which the sandbox may reach differently.</summary>
    private static string Relative(string signedUrl) => new Uri(signedUrl, UriKind.Absolute).PathAndQuery.TrimStart('/');

    public void Dispose()
    {
        http.Dispose();
        _direct?.Dispose();
    }
}

internal sealed record LookupRequest([property: JsonPropertyName("key")] string Key, [property: JsonPropertyName("restore_keys")] IReadOnlyList<string> RestoreKeys, [property: JsonPropertyName("version")] string Version);

/// <param name="Sha256">EphemeralCI's extension: the archive's SHA-256, checked before extracting.</param>
/// <param name="SizeBytes">EphemeralCI's extension: the archive's size (int64 as a string, proto3 JSON).</param>
/// <param name="DirectDownloadUrl">EphemeralCI's extension: a presigned object-store URL, with <c>Cache:DirectDownloads</c>.</param>
/// <param name="Scope">EphemeralCI's extension: the ref whose entries the hit is from.</param>
internal sealed record LookupResponse(
    [property: JsonPropertyName("ok")] bool Ok,
    [property: JsonPropertyName("signed_download_url")] string SignedDownloadUrl,
    [property: JsonPropertyName("matched_key")] string MatchedKey,
    [property: JsonPropertyName("sha256")] string? Sha256 = null,
    [property: JsonPropertyName("size_bytes")] string? SizeBytes = null,
    [property: JsonPropertyName("direct_download_url")] string? DirectDownloadUrl = null,
    [property: JsonPropertyName("scope")] string? Scope = null);

internal sealed record CreateRequest([property: JsonPropertyName("key")] string Key, [property: JsonPropertyName("version")] string Version);
internal sealed record CreateResponse([property: JsonPropertyName("ok")] bool Ok, [property: JsonPropertyName("signed_upload_url")] string SignedUploadUrl);
internal sealed record FinalizeRequest([property: JsonPropertyName("key")] string Key, [property: JsonPropertyName("version")] string Version,
    [property: JsonPropertyName("size_bytes")] string SizeBytes, [property: JsonPropertyName("sha256")] string Sha256);
internal sealed record FinalizeResponse([property: JsonPropertyName("ok")] bool Ok);

/// <summary>The cache protocol's DTOs, source-generated: the agent is native-AOT, so no reflection JSON.</summary>
[JsonSerializable(typeof(LookupRequest))]
[JsonSerializable(typeof(LookupResponse))]
[JsonSerializable(typeof(CreateRequest))]
[JsonSerializable(typeof(CreateResponse))]
[JsonSerializable(typeof(FinalizeRequest))]
[JsonSerializable(typeof(FinalizeResponse))]
internal sealed partial class CacheJsonContext : JsonSerializerContext;

public sealed class CacheServiceException(string message, int? statusCode = null) : Exception(message)
{
    /// <summary>The HTTP status the cache answered, when it answered.</summary>
    public int? StatusCode { get; } = statusCode;
}

/// <summary>At most <paramref name="length"/> bytes of <paramref name="inner"/> from its current position.</summary>
internal sealed class BoundedStream(Stream inner, long length) : Stream
{
    private long _read;
    private long Left => length - _read;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (Left <= 0) return 0;
        var read = await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, Left)], cancellationToken);
        _read += read;
        return read;
    }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => length;
    public override long Position { get => _read; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
