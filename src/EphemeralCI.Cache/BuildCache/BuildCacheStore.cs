using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Cache.Storage;
using EphemeralCI.JobTokens;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.BuildCache;

public enum BuildCachePutOutcome
{
    Stored,
    /// <summary>The job's ref already holds (or is storing) exactly these bytes under this address: nothing to do.</summary>
    Unchanged,
    /// <summary>The job's ref holds other bytes under this address: entries are immutable.</summary>
    Conflict,
    /// <summary>An action result from a ref not in <c>Cache:BuildCache:TrustedRefs</c>.</summary>
    UntrustedActionResult,
    TooLarge,
}

/// <summary>
/// The HTTP build cache (<c>/ac</c>, <c>/cas</c>) as cache entries, scoped like the keyed entries: an entry belongs to the
/// repository and ref of the job that wrote it (key <c>{ac|cas}/{hash}</c>, version <see cref="Version"/>); a job reads its
/// own ref's entries, then the default branch's, and writes only its own ref's. Entries are immutable (the same bytes
/// again are a no-op, other bytes a conflict), count against the ref's and the repository's quota, expire and show in the
/// admin API like every other entry. Action results, which nothing can check, are written only by trusted refs.
/// </summary>
public sealed class BuildCacheStore(
    CacheDbContext db, CacheEntryService entries, ICacheLookups lookups, IBlobStore blobs,
    IOptions<CacheOptions> options, TimeProvider clock, ILogger<BuildCacheStore> logger)
{
    /// <summary>
    /// The version of every build-cache entry. It holds a space, which <see cref="CacheKeyRules.CheckVersion"/> refuses, so no
    /// Actions-protocol client can reserve, commit or look up a build-cache entry through those APIs (and so around the
    /// trusted-ref rule), nor can a build-cache entry ever collide with a keyed one.
    /// </summary>
    public const string Version = "eci build-cache";

    public static string KeyOf(BuildCacheAddress address) => $"{address.Kind.ToPathSegment()}/{address.Hash}";

    /// <summary>The entry the job sees at <paramref name="address"/>: its own ref's, else the default branch's.</summary>
    public Task<RestoreHit?> FindAsync(JobTokenClaims job, BuildCacheAddress address, CancellationToken cancellationToken) =>
        entries.FindForRestoreAsync(job, KeyOf(address), [], Version, cancellationToken);

    /// <summary>The largest body the job may store (its ref's budget, at most <c>Cache:MaxObjectBytes</c>).</summary>
    public long LimitFor(JobTokenClaims job) => Math.Min(options.Value.MaxObjectBytes, options.Value.ScopeQuotaOf(job.Repository, job.Ref));

    /// <summary>Whether the job's ref may write action results at all (checked before the body is read).</summary>
    public bool MayWrite(JobTokenClaims job, BuildCacheAddress address) =>
        address.Kind != BuildCacheKind.ActionCache
        || options.Value.BuildCache.MayWriteActionResults(job.Ref, options.Value.DefaultBranchOf(job.Repository));

    /// <summary>Stores the spooled body (a CAS body already checked against its hash) as the job's ref's entry at <paramref name="address"/>.</summary>
    public async Task<BuildCachePutOutcome> PutAsync(JobTokenClaims job, BuildCacheAddress address, UploadSpool body, CancellationToken cancellationToken)
    {
        if (!MayWrite(job, address)) return BuildCachePutOutcome.UntrustedActionResult;
        if (body.Length > LimitFor(job)) return BuildCachePutOutcome.TooLarge;
        var key = KeyOf(address);
        if (await OwnEntryAsync(job, key, cancellationToken) is { } existing)
        {
            if (existing.State != CacheEntryState.Quarantined) return Compare(existing, body);
            await entries.DeleteAsync(existing, cancellationToken); // failed its check: never served, replaced by the next write
        }

        var now = clock.GetUtcNow();
        // Reserved, with the hash already known: a concurrent writer of the same address learns from this row whether it
        // brings the same bytes (a no-op) or others (a conflict); the unique index makes exactly one of them the writer.
        var entry = new CacheEntry
        {
            Repository = job.Repository, Scope = job.Ref, Key = key, Version = Version, State = CacheEntryState.Reserved,
            SizeBytes = body.Length, Sha256 = body.Sha256, ReservedByJobId = job.JobId, CreatedAt = now, LastAccessedAt = now,
        };
        db.Entries.Add(entry);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException)
        {
            db.Entry(entry).State = EntityState.Detached;
            return await OwnEntryAsync(job, key, cancellationToken) is { } winner ? Compare(winner, body) : BuildCachePutOutcome.Conflict;
        }

        var objectKey = CacheScope.BuildCacheObjectKey(job.Repository, address, entry.Id);
        try
        {
            await blobs.PutAsync(objectKey, body.OpenContent(), body.Length, cancellationToken);
            entry.ObjectKey = objectKey;
            entry.State = CacheEntryState.Committed;
            entry.CommittedAt = entry.LastAccessedAt = clock.GetUtcNow();
            await db.SaveChangesAsync(cancellationToken);
        }
        catch
        {
            // Nothing half-written stays: neither the object nor the reservation.
            await blobs.DeleteAsync(objectKey, CancellationToken.None);
            await db.Entries.Where(e => e.Id == entry.Id).ExecuteDeleteAsync(CancellationToken.None);
            throw;
        }
        await lookups.InvalidateAsync(job.Repository, cancellationToken);
        logger.LogDebug("Stored build-cache {Kind} entry {Hash} of {Repository} on {Scope} ({Bytes} bytes)", address.Kind.ToPathSegment(), address.Hash, job.Repository, job.Ref, body.Length);
        await entries.EnforceQuotaAsync(job.Repository, job.Ref, keep: entry.Id, cancellationToken);
        return BuildCachePutOutcome.Stored;
    }

    private Task<CacheEntry?> OwnEntryAsync(JobTokenClaims job, string key, CancellationToken cancellationToken) =>
        db.Entries.AsNoTracking().SingleOrDefaultAsync(
            e => e.Repository == job.Repository && e.Scope == job.Ref && e.Key == key && e.Version == Version, cancellationToken);

    private static BuildCachePutOutcome Compare(CacheEntry existing, UploadSpool body) =>
        existing.Sha256 == body.Sha256 && existing.SizeBytes == body.Length
            ? BuildCachePutOutcome.Unchanged
            : BuildCachePutOutcome.Conflict;
}
