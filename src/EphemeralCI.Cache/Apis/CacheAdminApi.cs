using Microsoft.Extensions.Hosting;
using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Contracts.Admin;
using EphemeralCI.JobTokens;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Apis;

/// <summary>Operators: usage per repository, entries, deletion. Guarded by <c>Cache:AdminToken</c>.</summary>
public static class CacheAdminApi
{
    public const int MaxPageSize = 500;

    public static RouteGroupBuilder MapCacheAdminApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/cache/admin")
            .WithTags("CacheAdmin")
            .AdminListenerOnly()
            .AddEndpointFilter<CacheAdminTokenGate>()
            .ProducesProblem(StatusCodes.Status401Unauthorized);

        api.MapGet("/usage", GetUsageAsync)
            .WithName("GetCacheUsage")
            .WithSummary("Stored bytes and entries per repository, against the quota");
        api.MapGet("/usage/scopes", GetScopeUsageAsync)
            .WithName("GetCacheScopeUsage")
            .WithSummary("Stored bytes and entries per repository and scope (ref), with the per-repository quota");
        api.MapGet("/entries", ListEntriesAsync)
            .WithName("ListCacheEntries")
            .WithSummary("Entries, newest first; filter by repository, scope (ref) and key prefix");
        api.MapDelete("/entries/{id:long}", DeleteEntryAsync)
            .WithName("DeleteCacheEntry")
            .WithSummary("Delete an entry and its object");
        return api;
    }

    public static async Task<Ok<List<RepositoryUsage>>> GetUsageAsync(CacheDbContext db, IOptions<CacheOptions> options, CancellationToken cancellationToken)
    {
        var rows = await db.Entries
            .GroupBy(e => e.Repository)
            .Select(g => new
            {
                Repository = g.Key,
                Committed = g.Count(e => e.State == CacheEntryState.Committed),
                Reserved = g.Count(e => e.State == CacheEntryState.Reserved),
                Quarantined = g.Count(e => e.State == CacheEntryState.Quarantined),
                Bytes = g.Where(e => e.State != CacheEntryState.Reserved).Sum(e => e.SizeBytes),
            })
            .OrderBy(r => r.Repository)
            .ToListAsync(cancellationToken);
        var quota = options.Value.RepositoryQuotaBytes;
        return TypedResults.Ok(rows.Select(r => new RepositoryUsage(r.Repository, r.Committed, r.Reserved, r.Quarantined, r.Bytes, quota)).ToList());
    }

    // The same rows the all-in-one server's web UI reads in process, so a split intake's page shows the same thing.
    public static async Task<Ok<CacheScopeUsageReport>> GetScopeUsageAsync(ICacheAdminView view, CancellationToken cancellationToken) =>
        TypedResults.Ok(new CacheScopeUsageReport(view.RepositoryQuotaBytes, await view.UsageAsync(cancellationToken)));

    public static async Task<Results<Ok<List<CacheEntryView>>, ValidationProblem>> ListEntriesAsync(
        [AsParameters] EntryQuery query, CacheDbContext db, CancellationToken cancellationToken)
    {
        var limit = query.Limit ?? 100;
        if (limit is < 1 or > MaxPageSize) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["limit"] = [$"must be 1-{MaxPageSize}"] });
        if (query.Offset is < 0) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["offset"] = ["must not be negative"] });
        var entries = db.Entries.AsNoTracking();
        if (!string.IsNullOrEmpty(query.Repository)) entries = entries.Where(e => e.Repository == query.Repository);
        if (!string.IsNullOrEmpty(query.Scope)) entries = entries.Where(e => e.Scope == query.Scope);
        if (!string.IsNullOrEmpty(query.KeyPrefix)) entries = entries.Where(e => e.Key.StartsWith(query.KeyPrefix));
        var page = await entries.OrderByDescending(e => e.CreatedAt).ThenByDescending(e => e.Id)
            .Skip(query.Offset ?? 0).Take(limit).ToListAsync(cancellationToken);
        return TypedResults.Ok(page.Select(CacheEntryView.Of).ToList());
    }

    public static async Task<Results<NoContent, NotFound>> DeleteEntryAsync(long id, CacheEntryService entries, CancellationToken cancellationToken)
    {
        if (await entries.FindAsync(id, cancellationToken) is not { } entry) return TypedResults.NotFound();
        await entries.DeleteAsync(entry, cancellationToken);
        return TypedResults.NoContent();
    }
}

/// <summary>Guards the admin API with <c>Cache:AdminToken</c>.</summary>
internal sealed class CacheAdminTokenGate(IOptions<CacheOptions> options)
    : StaticCredentialGate(options.Value.AdminToken, $"{CacheOptions.Section}:AdminToken", options.Value.AdminTokenSha256);

public sealed record EntryQuery(string? Repository, string? Scope, string? KeyPrefix, int? Limit, int? Offset);

public sealed record RepositoryUsage(string Repository, int Entries, int Reserved, int Quarantined, long Bytes, long QuotaBytes);

public sealed record CacheEntryView(long Id, string Repository, string Scope, string Key, string Version, string State,
    long SizeBytes, string? Sha256, DateTimeOffset CreatedAt, DateTimeOffset? CommittedAt, DateTimeOffset LastAccessedAt)
{
    public static CacheEntryView Of(CacheEntry e) => new(e.Id, e.Repository, e.Scope, e.Key, e.Version, e.State.ToString(),
        e.SizeBytes, e.Sha256, e.CreatedAt, e.CommittedAt, e.LastAccessedAt);
}
