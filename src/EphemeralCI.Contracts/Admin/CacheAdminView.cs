namespace EphemeralCI.Contracts.Admin;

/// <summary>What one repository's scope (a ref) holds in the dependency cache.</summary>
public sealed record CacheScopeUsage(string Repository, string Scope, int Entries, long Bytes);

/// <summary>Usage per repository and scope with the per-repository quota: the cache admin API's <c>/usage/scopes</c>.</summary>
public sealed record CacheScopeUsageReport(long RepositoryQuotaBytes, IReadOnlyList<CacheScopeUsage> Scopes);

/// <summary>One cache entry as an operator sees it (its object stays in the store).</summary>
public sealed record CacheEntrySummary(long Id, string Repository, string Scope, string Key, string State, long SizeBytes, DateTimeOffset CreatedAt, DateTimeOffset LastAccessedAt);

/// <summary>
/// The dependency cache's administration for a module in the same process to show (the all-in-one server's web UI,
/// to admin keys only): the same data and deletion as its admin API.
/// </summary>
public interface ICacheAdminView
{
    /// <summary>The per-repository quota in bytes.</summary>
    long RepositoryQuotaBytes { get; }

    Task<IReadOnlyList<CacheScopeUsage>> UsageAsync(CancellationToken ct);

    /// <summary>The newest <paramref name="limit"/> entries, of one repository when given.</summary>
    Task<IReadOnlyList<CacheEntrySummary>> EntriesAsync(string? repository, int limit, CancellationToken ct);

    /// <summary>Deletes an entry and its object; false when there is none.</summary>
    Task<bool> DeleteAsync(long id, CancellationToken ct);
}
