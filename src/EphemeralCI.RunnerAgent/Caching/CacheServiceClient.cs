using EphemeralCI.Contracts.Runner;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace EphemeralCI.RunnerAgent.Caching;

/// <summary>
/// The agent's side of the cache: the same v2 protocol the Actions toolkit speaks (Twirp lookup,
/// reserve, finalize; Azure block-blob upload and a plain GET on the signed URLs). Signed URLs are
/// followed by path and query over this client's own connection, so they also work through the
/// Unix socket the sandbox may reach the cache by.
/// </summary>
public sealed partial class CacheServiceClient(HttpClient http, string token) : IDisposable
{
    public const string CacheSocketVariable = RunnerEnvironment.CacheSocket;
    public const string CacheUrlVariable = RunnerEnvironment.CacheUrl;
    private const string Twirp = "twirp/github.actions.results.api.v1.CacheService/";
    /// <summary>Blocks of this size above it; one Put Blob below (as the toolkit's 128 MiB single shot, smaller to bound retries).</summary>
    internal int BlockSize { get; init; } = 32 * 1024 * 1024;

    /// <summary>Null when the sandbox has no way to the cache (neither variable set): caches are then skipped.</summary>
    public static CacheServiceClient? FromEnvironment(string token)
    {
        var socket = Environment.GetEnvironmentVariable(CacheSocketVariable);
        // The provisioner binds the socket only where a cache is configured.
        if (!string.IsNullOrEmpty(socket) && File.Exists(socket)) return new CacheServiceClient(UnixSocketHttp.Create(socket, new Uri("http://cache/")), token);
        var url = Environment.GetEnvironmentVariable(CacheUrlVariable);
        return string.IsNullOrEmpty(url) ? null : new CacheServiceClient(new HttpClient { BaseAddress = new Uri(url.EndsWith('/') ? url : url + "/") }, token);
    }

    /// <summary>The matched key and its download location, or null on a miss.</summary>
    public async Task<(string MatchedKey, string DownloadUrl)?> LookupAsync(string key, IReadOnlyList<string> restoreKeys, string version, CancellationToken ct)
    {
        var response = await CallAsync("GetCacheEntryDownloadURL", new LookupRequest(key, restoreKeys, version), TwirpJson.Default.LookupRequest, TwirpJson.Default.LookupResponse, ct);
        return response.Ok ? (response.MatchedKey, response.SignedDownloadUrl) : null;
    }

    public async Task DownloadAsync(string signedUrl, string destinationFile, CancellationToken ct)
    {
        using var response = await http.GetAsync(Relative(signedUrl), HttpCompletionOption.ResponseHeadersRead, ct);
        await EnsureAsync(response, "download", ct);
        await using (var file = File.Create(destinationFile))
        {
            await response.Content.CopyToAsync(file, ct);
            // The cache withholds the end of a corrupted archive: a short body means "do not extract".
            if (response.Content.Headers.ContentLength is { } expected && file.Length != expected)
            {
                throw new CacheServiceException($"the download ended after {file.Length} of {expected} bytes (the cache refused a corrupted entry)");
            }
        }
    }

    /// <summary>Reserves, uploads and commits; false when the entry already exists or another job is saving it.</summary>
    public async Task<bool> SaveAsync(string key, string version, string archiveFile, string sha256, CancellationToken ct)
    {
        using var reserve = await PostAsync("CreateCacheEntry", new CreateRequest(key, version), TwirpJson.Default.CreateRequest, ct);
        if (reserve.StatusCode == HttpStatusCode.Conflict) return false;
        await EnsureAsync(reserve, "reserve", ct);
        var uploadUrl = (await reserve.Content.ReadFromJsonAsync(TwirpJson.Default.CreateResponse, ct))!.SignedUploadUrl;

        var length = new FileInfo(archiveFile).Length;
        if (length <= BlockSize) await PutAsync(uploadUrl, "", archiveFile, 0, length, ct);
        else await PutBlocksAsync(uploadUrl, archiveFile, length, ct);

        await CallAsync("FinalizeCacheEntryUpload", new FinalizeRequest(key, version, length.ToString(CultureInfo.InvariantCulture), sha256),
            TwirpJson.Default.FinalizeRequest, TwirpJson.Default.FinalizeResponse, ct);
        return true;
    }

    private async Task PutBlocksAsync(string uploadUrl, string archiveFile, long length, CancellationToken ct)
    {
        var ids = new List<string>();
        for (long offset = 0, n = 0; offset < length; offset += BlockSize, n++)
        {
            var id = Convert.ToBase64String(Encoding.ASCII.GetBytes(n.ToString("D8", CultureInfo.InvariantCulture)));
            ids.Add(id);
            await PutAsync(uploadUrl, $"&comp=block&blockid={Uri.EscapeDataString(id)}", archiveFile, offset, Math.Min(BlockSize, length - offset), ct);
        }
        var xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>" + string.Concat(ids.Select(id => $"<Latest>{id}</Latest>")) + "</BlockList>";
        using var request = new HttpRequestMessage(HttpMethod.Put, Relative(uploadUrl) + "&comp=blocklist") { Content = new StringContent(xml, Encoding.UTF8, "application/xml") };
        using var response = await http.SendAsync(request, ct);
        await EnsureAsync(response, "commit blocks", ct);
    }

    private async Task PutAsync(string uploadUrl, string extraQuery, string archiveFile, long offset, long count, CancellationToken ct)
    {
        await using var file = File.OpenRead(archiveFile);
        file.Position = offset;
        var content = new StreamContent(new BoundedStream(file, count));
        content.Headers.ContentLength = count;
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var request = new HttpRequestMessage(HttpMethod.Put, Relative(uploadUrl) + extraQuery) { Content = content };
        request.Headers.TryAddWithoutValidation("x-ms-blob-type", "BlockBlob");
        using var response = await http.SendAsync(request, ct);
        await EnsureAsync(response, "upload", ct);
    }

    private async Task<TResponse> CallAsync<TRequest, TResponse>(string method, TRequest body, JsonTypeInfo<TRequest> requestJson, JsonTypeInfo<TResponse> responseJson, CancellationToken ct)
    {
        using var response = await PostAsync(method, body, requestJson, ct);
        await EnsureAsync(response, method, ct);
        return (await response.Content.ReadFromJsonAsync(responseJson, ct))!;
    }

    private async Task<HttpResponseMessage> PostAsync<TRequest>(string method, TRequest body, JsonTypeInfo<TRequest> json, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, Twirp + method) { Content = JsonContent.Create(body, json) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await http.SendAsync(request, ct);
    }

    private static async Task EnsureAsync(HttpResponseMessage response, string what, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode) return;
        var detail = await response.Content.ReadAsStringAsync(ct);
        throw new CacheServiceException($"cache {what} failed: HTTP {(int)response.StatusCode} {(detail.Length > 300 ? detail[..300] : detail)}");
    }

    /// <summary>Only path and query: the signed URL's host is the cache as the cache saw itself, which the sandbox may reach differently.</summary>
    private static string Relative(string signedUrl) => new Uri(signedUrl, UriKind.Absolute).PathAndQuery.TrimStart('/');

    public void Dispose() => http.Dispose();

    private sealed record LookupRequest([property: JsonPropertyName("key")] string Key, [property: JsonPropertyName("restore_keys")] IReadOnlyList<string> RestoreKeys, [property: JsonPropertyName("version")] string Version);
    private sealed record LookupResponse([property: JsonPropertyName("ok")] bool Ok, [property: JsonPropertyName("signed_download_url")] string SignedDownloadUrl, [property: JsonPropertyName("matched_key")] string MatchedKey);
    private sealed record CreateRequest([property: JsonPropertyName("key")] string Key, [property: JsonPropertyName("version")] string Version);
    private sealed record CreateResponse([property: JsonPropertyName("ok")] bool Ok, [property: JsonPropertyName("signed_upload_url")] string SignedUploadUrl);
    private sealed record FinalizeRequest([property: JsonPropertyName("key")] string Key, [property: JsonPropertyName("version")] string Version,
        [property: JsonPropertyName("size_bytes")] string SizeBytes, [property: JsonPropertyName("sha256")] string Sha256);
    private sealed record FinalizeResponse([property: JsonPropertyName("ok")] bool Ok);

    /// <summary>The Twirp messages, serialized by generated code (the agent is compiled ahead of time).</summary>
    [JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
    [JsonSerializable(typeof(LookupRequest))]
    [JsonSerializable(typeof(LookupResponse))]
    [JsonSerializable(typeof(CreateRequest))]
    [JsonSerializable(typeof(CreateResponse))]
    [JsonSerializable(typeof(FinalizeRequest))]
    [JsonSerializable(typeof(FinalizeResponse))]
    private sealed partial class TwirpJson : JsonSerializerContext;
}

public sealed class CacheServiceException(string message) : Exception(message);

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
