using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>The Actions cache protocols spoken by hand from C#, for the cases the real toolkit never produces (bad input, attacks).</summary>
public sealed class CacheProtocolClient(HttpClient http, string token)
{
    private const string Twirp = "twirp/github.actions.results.api.v1.CacheService/";

    public async Task<HttpResponseMessage> TwirpAsync(string method, object body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, Twirp + method) { Content = JsonContent.Create(body) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await http.SendAsync(request);
    }

    public async Task<HttpResponseMessage> V1Async(HttpMethod method, string path, HttpContent? content = null, string? contentRange = null)
    {
        using var request = new HttpRequestMessage(method, "_apis/artifactcache/" + path) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (contentRange is not null) request.Content!.Headers.TryAddWithoutValidation("Content-Range", contentRange);
        return await http.SendAsync(request);
    }

    /// <summary>v2 save as the toolkit does it for a small archive: reserve, one Put Blob, finalize.</summary>
    public async Task<HttpResponseMessage> SaveV2Async(string key, string version, byte[] content, long? declaredSize = null, string? sha256 = null)
    {
        var uploadUrl = await CreateAsync(key, version);
        using (var put = await PutBlobAsync(uploadUrl, content)) put.EnsureSuccessStatusCode();
        return await TwirpAsync("FinalizeCacheEntryUpload", new Dictionary<string, object?>
        {
            ["key"] = key, ["version"] = version, ["size_bytes"] = (declaredSize ?? content.Length).ToString(System.Globalization.CultureInfo.InvariantCulture), ["sha256"] = sha256,
        });
    }

    public async Task<string> CreateAsync(string key, string version)
    {
        using var created = await TwirpAsync("CreateCacheEntry", new { key, version });
        created.EnsureSuccessStatusCode();
        return (await created.Content.ReadFromJsonAsync<JsonObject>())!["signed_upload_url"]!.GetValue<string>();
    }

    public async Task<HttpResponseMessage> PutBlobAsync(string uploadUrl, byte[] content)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, uploadUrl) { Content = new ByteArrayContent(content) };
        request.Headers.TryAddWithoutValidation("x-ms-blob-type", "BlockBlob");
        return await http.SendAsync(request);
    }

    /// <summary>Azure Put Block of <paramref name="content"/> under the (unencoded) block id.</summary>
    public async Task<HttpResponseMessage> PutBlockAsync(string uploadUrl, string blockId, byte[] content)
    {
        var id = Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes(blockId));
        using var request = new HttpRequestMessage(HttpMethod.Put, $"{uploadUrl}&comp=block&blockid={Uri.EscapeDataString(id)}") { Content = new ByteArrayContent(content) };
        return await http.SendAsync(request);
    }

    /// <summary>Azure Put Block List naming the (unencoded) block ids in order.</summary>
    public async Task<HttpResponseMessage> PutBlockListAsync(string uploadUrl, params string[] blockIds)
    {
        var xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>"
            + string.Concat(blockIds.Select(b => $"<Latest>{Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes(b))}</Latest>")) + "</BlockList>";
        using var request = new HttpRequestMessage(HttpMethod.Put, uploadUrl + "&comp=blocklist") { Content = new StringContent(xml, System.Text.Encoding.UTF8, "application/xml") };
        return await http.SendAsync(request);
    }

    /// <summary>v2 lookup; (matched key, signed download URL) or null on a miss.</summary>
    public async Task<(string Key, string Url)?> LookupV2Async(string key, string version, params string[] restoreKeys)
    {
        using var response = await TwirpAsync("GetCacheEntryDownloadURL", new { key, restore_keys = restoreKeys, version });
        response.EnsureSuccessStatusCode();
        var body = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        return body["ok"]!.GetValue<bool>() ? (body["matched_key"]!.GetValue<string>(), body["signed_download_url"]!.GetValue<string>()) : null;
    }

    /// <summary>v1 reserve; the cache id.</summary>
    public async Task<long> ReserveV1Async(string key, string version, long? size = null)
    {
        using var response = await V1Async(HttpMethod.Post, "caches", JsonContent.Create(new { key, version, cacheSize = size }));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonObject>())!["cacheId"]!.GetValue<long>();
    }

    public Task<HttpResponseMessage> PatchV1Async(long id, byte[] chunk, long start) =>
        V1Async(HttpMethod.Patch, $"caches/{id}", new ByteArrayContent(chunk), $"bytes {start}-{start + chunk.Length - 1}/*");

    public Task<HttpResponseMessage> CommitV1Async(long id, long size, string? sha256 = null) =>
        V1Async(HttpMethod.Post, $"caches/{id}", JsonContent.Create(new { size, sha256 }));

    public static string Sha256(byte[] content) => Convert.ToHexStringLower(SHA256.HashData(content));
}

public static class ProblemAssert
{
    /// <summary>Asserts an RFC 9457 problem with <paramref name="status"/>; returns its body.</summary>
    public static async Task<JsonObject> IsProblemAsync(HttpResponseMessage response, HttpStatusCode status, string? field = null)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var body = JsonNode.Parse(text)!.AsObject();
        Assert.Equal((int)status, body["status"]!.GetValue<int>());
        if (field is not null) Assert.Equal(field, body["field"]?.GetValue<string>());
        return body;
    }
}
