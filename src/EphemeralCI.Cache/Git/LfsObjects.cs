using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Cache.Git;

/// <summary>One object of a Git LFS batch: its SHA-256 and size.</summary>
public sealed record LfsPointer(string Oid, long Size);

/// <summary>
/// Git LFS objects of a mirror, kept beside it (<c>{mirror}/lfs/objects/ab/cd/{oid}</c>, so the mirror budget and its
/// deletion cover them) and fetched from the forge's LFS server on first request with the control plane's forge
/// credential — the runner asks the cache only, as it does for git objects. Every object is checked against its oid
/// (SHA-256) and size before it is kept. The forge's LFS endpoint is the repository's HTTPS URL + <c>/info/lfs</c>, as
/// git-lfs derives it; SSH forges are not served (git-lfs-authenticate is not spoken here).
/// </summary>
public sealed partial class LfsObjects(GitMirrors mirrors, IForgeCredentials credentials, IHttpClientFactory http, ILogger<LfsObjects> logger)
{
    public const int MaxObjectsPerBatch = 1000;
    public const string HttpClientName = "forge-lfs";

    public static bool IsOid(string? oid) => oid is not null && OidPattern().IsMatch(oid);

    public string PathOf(string repository, string oid) => Path.Combine(mirrors.MirrorPath(repository), "lfs", "objects", oid[..2], oid[2..4], oid);

    /// <summary>The pointers not yet kept are fetched from the forge; returns why each one that could not be, by oid.</summary>
    public async Task<Dictionary<string, string>> EnsureAsync(string repository, IReadOnlyList<LfsPointer> pointers, CancellationToken ct)
    {
        var failed = new Dictionary<string, string>(StringComparer.Ordinal);
        var missing = pointers.Where(p => !Has(repository, p)).DistinctBy(p => p.Oid).ToList();
        if (missing.Count == 0) return failed;
        var url = mirrors.ForgeUrl(repository);
        if (!url.StartsWith("https://", StringComparison.OrdinalIgnoreCase) && !url.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            foreach (var p in missing) failed[p.Oid] = "LFS objects are fetched from HTTPS forges only";
            return failed;
        }
        using var credential = await credentials.GetAsync(repository, url, ct);
        var client = http.CreateClient(HttpClientName);
        var endpoint = (url.EndsWith(".git", StringComparison.Ordinal) ? url : url + ".git") + "/info/lfs/objects/batch";
        using var request = new HttpRequestMessage(HttpMethod.Post, endpoint)
        {
            Content = JsonContent.Create(new { operation = "download", transfers = new[] { "basic" }, objects = missing.Select(p => new { oid = p.Oid, size = p.Size }) },
                new MediaTypeHeaderValue("application/vnd.git-lfs+json")),
        };
        request.Headers.Accept.ParseAdd("application/vnd.git-lfs+json");
        if (credential?.HttpAuthorization is { } auth) request.Headers.TryAddWithoutValidation("Authorization", auth);
        using var response = await client.SendAsync(request, ct);
        if (!response.IsSuccessStatusCode)
        {
            foreach (var p in missing) failed[p.Oid] = $"the forge's LFS server answered {(int)response.StatusCode}";
            return failed;
        }
        using var batch = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(ct), cancellationToken: ct);
        var answered = batch.RootElement.TryGetProperty("objects", out var objects) ? objects.EnumerateArray().ToList() : [];
        foreach (var pointer in missing)
        {
            var entry = answered.FirstOrDefault(o => o.TryGetProperty("oid", out var oid) && oid.GetString() == pointer.Oid);
            if (entry.ValueKind != JsonValueKind.Object) { failed[pointer.Oid] = "the forge did not answer for it"; continue; }
            if (entry.TryGetProperty("error", out var error)) { failed[pointer.Oid] = error.TryGetProperty("message", out var m) ? m.GetString() ?? "error" : "error"; continue; }
            if (!entry.TryGetProperty("actions", out var actions) || !actions.TryGetProperty("download", out var download)
                || !Uri.TryCreate(download.GetProperty("href").GetString(), UriKind.Absolute, out var href))
            {
                failed[pointer.Oid] = "the forge gave no download";
                continue;
            }
            var why = await DownloadAsync(client, repository, pointer, href, download, credential, new Uri(endpoint), ct);
            if (why is not null) failed[pointer.Oid] = why;
        }
        return failed;
    }

    public bool Has(string repository, LfsPointer pointer)
    {
        var file = new FileInfo(PathOf(repository, pointer.Oid));
        return file.Exists && file.Length == pointer.Size;
    }

    private async Task<string?> DownloadAsync(HttpClient client, string repository, LfsPointer pointer, Uri href, JsonElement download,
        ForgeCredential? credential, Uri endpoint, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, href);
        var headers = download.TryGetProperty("header", out var h) && h.ValueKind == JsonValueKind.Object ? h.EnumerateObject().ToList() : [];
        foreach (var header in headers) request.Headers.TryAddWithoutValidation(header.Name, header.Value.GetString());
        // The forge's own host gets the forge credential unless the forge said how to authenticate; a storage URL elsewhere never does.
        if (!headers.Any(x => x.Name.Equals("Authorization", StringComparison.OrdinalIgnoreCase)) && credential?.HttpAuthorization is { } auth
            && string.Equals(href.Authority, endpoint.Authority, StringComparison.OrdinalIgnoreCase))
        {
            request.Headers.TryAddWithoutValidation("Authorization", auth);
        }
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (!response.IsSuccessStatusCode) return $"the forge answered {(int)response.StatusCode} for the object";
        var target = PathOf(repository, pointer.Oid);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var temp = target + "." + Guid.NewGuid().ToString("N") + ".tmp";
        try
        {
            using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            await using (var file = File.Create(temp))
            {
                await using var body = await response.Content.ReadAsStreamAsync(ct);
                var buffer = new byte[81920];
                long total = 0;
                int read;
                while ((read = await body.ReadAsync(buffer, ct)) > 0)
                {
                    total += read;
                    if (total > pointer.Size) return "the forge sent more bytes than the pointer's size";
                    sha.AppendData(buffer, 0, read);
                    await file.WriteAsync(buffer.AsMemory(0, read), ct);
                }
                if (total != pointer.Size || Convert.ToHexStringLower(sha.GetHashAndReset()) != pointer.Oid) return "the forge sent an object that does not match its oid and size";
            }
            File.Move(temp, target, overwrite: true);
            logger.LogInformation("Fetched LFS object {Oid} ({Bytes} bytes) of {Repository}", pointer.Oid, pointer.Size, repository);
            return null;
        }
        finally
        {
            File.Delete(temp);
        }
    }

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex OidPattern();
}
