using System.Net.Http.Json;

namespace EphemeralCI.Cli.Api;

// The admin APIs of the secrets broker and the cache. Same client, same error handling; the
// client's Target says which service it is so the messages name the right one.
public sealed partial class EciApiClient
{
    private static string SecretPath(string name) => "api/v1/admin/secrets/" + Uri.EscapeDataString(name);

    public Task<ApiResult<List<SecretMetadata>>> ListSecretsAsync(CancellationToken ct) =>
        GetAsync<List<SecretMetadata>>("api/v1/admin/secrets", ct);

    public Task<ApiResult<SecretMetadata>> GetSecretAsync(string name, CancellationToken ct) =>
        GetAsync<SecretMetadata>(SecretPath(name), ct);

    // Not retried: with a value, a PUT that reached the broker before the connection broke would add a second version.
    public Task<ApiResult<SecretMetadata>> PutSecretAsync(string name, PutSecretRequest request, CancellationToken ct) =>
        SendAsync<SecretMetadata>(() => new HttpRequestMessage(HttpMethod.Put, SecretPath(name))
        {
            // Json ignores nulls when writing; a null value must be left out anyway (it means "keep the current version").
            Content = JsonContent.Create(request, options: Json),
        }, retry: false, ct);

    public async Task DeleteSecretAsync(string name, CancellationToken ct)
    {
        // Not retried: a delete that went through would answer 404 the second time.
        using var _ = await SendRawAsync(() => new HttpRequestMessage(HttpMethod.Delete, SecretPath(name)), retry: false, HttpCompletionOption.ResponseContentRead, ct);
    }

    public Task<ApiResult<List<AuditEntry>>> QueryAuditAsync(string? secret, Guid? jobId, string? action, long? after, int? limit, CancellationToken ct)
    {
        var query = new List<string>();
        if (!string.IsNullOrEmpty(secret)) query.Add("secret=" + Uri.EscapeDataString(secret));
        if (jobId is { } j) query.Add("jobId=" + j);
        if (!string.IsNullOrEmpty(action)) query.Add("action=" + Uri.EscapeDataString(action));
        if (after is { } a) query.Add("after=" + a);
        if (limit is { } l) query.Add("limit=" + l);
        return GetAsync<List<AuditEntry>>("api/v1/admin/audit" + (query.Count > 0 ? "?" + string.Join('&', query) : ""), ct);
    }

    public Task<ApiResult<List<RepositoryUsage>>> CacheUsageAsync(CancellationToken ct) =>
        GetAsync<List<RepositoryUsage>>("cache/admin/usage", ct);

    public Task<ApiResult<List<CacheEntryView>>> ListCacheEntriesAsync(string? repository, string? scope, string? keyPrefix, int? limit, int? offset, CancellationToken ct)
    {
        var query = new List<string>();
        if (!string.IsNullOrEmpty(repository)) query.Add("repository=" + Uri.EscapeDataString(repository));
        if (!string.IsNullOrEmpty(scope)) query.Add("scope=" + Uri.EscapeDataString(scope));
        if (!string.IsNullOrEmpty(keyPrefix)) query.Add("keyPrefix=" + Uri.EscapeDataString(keyPrefix));
        if (limit is { } l) query.Add("limit=" + l);
        if (offset is { } o) query.Add("offset=" + o);
        return GetAsync<List<CacheEntryView>>("cache/admin/entries" + (query.Count > 0 ? "?" + string.Join('&', query) : ""), ct);
    }

    public async Task DeleteCacheEntryAsync(long id, CancellationToken ct)
    {
        using var _ = await SendRawAsync(() => new HttpRequestMessage(HttpMethod.Delete, $"cache/admin/entries/{id}"), retry: false, HttpCompletionOption.ResponseContentRead, ct);
    }
}
