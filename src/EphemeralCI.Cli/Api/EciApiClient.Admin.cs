using System.Globalization;
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

    public Task<ApiResult<List<AuditEntry>>> QueryAuditAsync(string? secret, Guid? jobId, string? action, long? after, int? limit, CancellationToken ct) =>
        GetAsync<List<AuditEntry>>(WithQuery("api/v1/admin/audit",
            ("secret", secret), ("jobId", jobId?.ToString()), ("action", action), ("after", after?.ToString(CultureInfo.InvariantCulture)),
            ("limit", limit?.ToString(CultureInfo.InvariantCulture))), ct);

    public Task<ApiResult<List<RepositoryUsage>>> CacheUsageAsync(CancellationToken ct) =>
        GetAsync<List<RepositoryUsage>>("cache/admin/usage", ct);

    public Task<ApiResult<List<CacheEntryView>>> ListCacheEntriesAsync(string? repository, string? scope, string? keyPrefix, int? limit, int? offset, CancellationToken ct) =>
        GetAsync<List<CacheEntryView>>(CacheEntriesPath(repository, scope, keyPrefix, limit, offset), ct);

    internal static string CacheEntriesPath(string? repository, string? scope, string? keyPrefix, int? limit, int? offset) =>
        WithQuery("cache/admin/entries", ("repository", repository), ("scope", scope), ("keyPrefix", keyPrefix),
            ("limit", limit?.ToString(CultureInfo.InvariantCulture)), ("offset", offset?.ToString(CultureInfo.InvariantCulture)));

    /// <summary>The path with the parameters that have a value, escaped.</summary>
    internal static string WithQuery(string path, params (string Name, string? Value)[] parameters)
    {
        var query = parameters.Where(p => !string.IsNullOrEmpty(p.Value)).Select(p => p.Name + "=" + Uri.EscapeDataString(p.Value!)).ToList();
        return query.Count == 0 ? path : path + "?" + string.Join('&', query);
    }

    public async Task DeleteCacheEntryAsync(long id, CancellationToken ct)
    {
        using var _ = await SendRawAsync(() => new HttpRequestMessage(HttpMethod.Delete, $"cache/admin/entries/{id}"), retry: false, HttpCompletionOption.ResponseContentRead, ct);
    }
}
