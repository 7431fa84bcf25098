using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using EphemeralCI.Contracts.Admin;

namespace EphemeralCI.Intake.WebUi;

/// <summary>
/// Where the web UI finds the secrets broker's and the cache's admin listeners in a split deployment
/// (<c>Intake:Admin:*</c>). Only URLs: the admin tokens are never configured here (least privilege) — an admin
/// pastes them into the web UI, and they live only in that admin's encrypted session cookie.
/// </summary>
public sealed class WebUiAdminOptions
{
    public const string Section = "Intake:Admin";
    public const string HttpClientName = "eci-webui-admin";

    /// <summary>The broker's admin listener, e.g. http://secrets-broker:8081.</summary>
    public string? SecretsBrokerUrl { get; set; }

    /// <summary>The cache's admin listener, e.g. http://cache:8081.</summary>
    public string? CacheUrl { get; set; }
}

/// <summary>The token the admin API refused (HTTP 401/403): the unlock form says so and stores nothing.</summary>
public sealed class AdminTokenRefusedException(string message) : Exception(message);

/// <summary>Shared HTTP plumbing: one bearer token per call, the admin's own, never logged.</summary>
public abstract class RemoteAdminView(HttpClient http, string baseUrl, string token)
{
    protected async Task<T> GetAsync<T>(string path, CancellationToken ct)
    {
        using var response = await SendAsync(HttpMethod.Get, path, ct);
        return await response.Content.ReadFromJsonAsync<T>(JsonSerializerOptions.Web, ct)
            ?? throw new HttpRequestException($"{Uri(path).GetLeftPart(UriPartial.Path)} answered with an empty body");
    }

    protected async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, CancellationToken ct, bool notFoundIsAnswer = false)
    {
        using var request = new HttpRequestMessage(method, Uri(path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var response = await http.SendAsync(request, ct);
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            response.Dispose();
            throw new AdminTokenRefusedException("The admin API refused this token.");
        }
        if (!response.IsSuccessStatusCode && !(notFoundIsAnswer && response.StatusCode == HttpStatusCode.NotFound))
        {
            var status = (int)response.StatusCode;
            response.Dispose();
            throw new HttpRequestException($"{Uri(path).GetLeftPart(UriPartial.Path)} answered HTTP {status}");
        }
        return response;
    }

    private Uri Uri(string path) => new(new Uri(baseUrl.TrimEnd('/') + "/"), path);
}

/// <summary>The broker's admin API (<c>/api/v1/admin</c>) as <see cref="ISecretsAdminView"/>.</summary>
public sealed class HttpSecretsAdminView(HttpClient http, string baseUrl, string token)
    : RemoteAdminView(http, baseUrl, token), ISecretsAdminView
{
    private sealed record Metadata(string Name, int CurrentVersion, List<string> Repositories, List<string> Refs, string? Environment, DateTimeOffset UpdatedAt, string UpdatedBy);

    public async Task<IReadOnlyList<SecretSummary>> SecretsAsync(CancellationToken ct) =>
        (await GetAsync<List<Metadata>>("api/v1/admin/secrets", ct))
        .Select(m => new SecretSummary(m.Name, m.CurrentVersion, m.Repositories, m.Refs, m.Environment, m.UpdatedAt, m.UpdatedBy)).ToList();

    public async Task<IReadOnlyList<SecretAuditLine>> RecentAuditAsync(int limit, CancellationToken ct) =>
        await GetAsync<List<SecretAuditLine>>($"api/v1/admin/audit/recent?limit={limit}", ct);
}

/// <summary>The cache's admin API (<c>/cache/admin</c>) as <see cref="ICacheAdminView"/>; the same rows the in-process view reads.</summary>
public sealed class HttpCacheAdminView(HttpClient http, string baseUrl, string token)
    : RemoteAdminView(http, baseUrl, token), ICacheAdminView
{
    private sealed record Entry(long Id, string Repository, string Scope, string Key, string State, long SizeBytes, DateTimeOffset CreatedAt, DateTimeOffset LastAccessedAt);

    public long RepositoryQuotaBytes { get; private set; }

    // Read before the page shows the quota (UsageAsync comes first, as for the in-process view).
    public async Task<IReadOnlyList<CacheScopeUsage>> UsageAsync(CancellationToken ct)
    {
        var report = await GetAsync<CacheScopeUsageReport>("cache/admin/usage/scopes", ct);
        RepositoryQuotaBytes = report.RepositoryQuotaBytes;
        return report.Scopes;
    }

    public async Task<IReadOnlyList<CacheEntrySummary>> EntriesAsync(string? repository, int limit, CancellationToken ct)
    {
        var query = $"cache/admin/entries?limit={limit}" + (repository is null ? "" : $"&repository={Uri.EscapeDataString(repository)}");
        return (await GetAsync<List<Entry>>(query, ct))
            .Select(e => new CacheEntrySummary(e.Id, e.Repository, e.Scope, e.Key, e.State, e.SizeBytes, e.CreatedAt, e.LastAccessedAt)).ToList();
    }

    public async Task<bool> DeleteAsync(long id, CancellationToken ct)
    {
        using var response = await SendAsync(HttpMethod.Delete, $"cache/admin/entries/{id}", ct, notFoundIsAnswer: true);
        return response.StatusCode != HttpStatusCode.NotFound;
    }
}
