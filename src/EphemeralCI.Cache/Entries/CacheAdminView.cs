using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Contracts.Admin;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Entries;

/// <summary>The admin API's usage, entries and deletion for an in-process reader (<see cref="ICacheAdminView"/>).</summary>
internal sealed class CacheAdminView(CacheDbContext db, CacheEntryService entries, IOptions<CacheOptions> options) : ICacheAdminView
{
    public long RepositoryQuotaBytes => options.Value.RepositoryQuotaBytes;

    public async Task<IReadOnlyList<CacheScopeUsage>> UsageAsync(CancellationToken ct) =>
        (await db.Entries.AsNoTracking()
            .Where(e => e.State != CacheEntryState.Reserved)
            .GroupBy(e => new { e.Repository, e.Scope })
            .Select(g => new { g.Key.Repository, g.Key.Scope, Entries = g.Count(), Bytes = g.Sum(e => e.SizeBytes) })
            .ToListAsync(ct))
        .OrderBy(u => u.Repository, StringComparer.Ordinal).ThenBy(u => u.Scope, StringComparer.Ordinal)
        .Select(u => new CacheScopeUsage(u.Repository, u.Scope, u.Entries, u.Bytes))
        .ToList();

    public async Task<IReadOnlyList<CacheEntrySummary>> EntriesAsync(string? repository, int limit, CancellationToken ct)
    {
        var query = db.Entries.AsNoTracking();
        if (!string.IsNullOrEmpty(repository)) query = query.Where(e => e.Repository == repository);
        return (await query.OrderByDescending(e => e.CreatedAt).ThenByDescending(e => e.Id).Take(limit).ToListAsync(ct))
            .Select(e => new CacheEntrySummary(e.Id, e.Repository, e.Scope, e.Key, e.State.ToString(), e.SizeBytes, e.CreatedAt, e.LastAccessedAt))
            .ToList();
    }

    public async Task<bool> DeleteAsync(long id, CancellationToken ct)
    {
        if (await entries.FindAsync(id, ct) is not { } entry) return false;
        await entries.DeleteAsync(entry, ct);
        return true;
    }
}
