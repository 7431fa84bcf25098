using EphemeralCI.Cache.BuildCache;
using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Cache.Storage;
using EphemeralCI.JobTokens;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Entries;

public enum ReserveOutcome
{
    Reserved,
    /// <summary>A committed entry with this key and version exists in the job's scope: entries are immutable.</summary>
    AlreadyExists,
    /// <summary>Another job holds the reservation.</summary>
    Busy,
    TooLarge,
}

public enum CommitOutcome
{
    Committed,
    NotFound,
    /// <summary>The entry is reserved by another job.</summary>
    NotYours,
    AlreadyCommitted,
    /// <summary>Nothing (or an uncommitted block list) was uploaded.</summary>
    NothingUploaded,
    SizeMismatch,
    HashMismatch,
}

public sealed record ReserveResult(ReserveOutcome Outcome, CacheEntry? Entry = null);

public sealed record CommitResult(CommitOutcome Outcome, CacheEntry? Entry = null, string? Detail = null);

/// <summary>
/// The entry life cycle every protocol shares: reserve (one writer), commit (size and SHA-256 checked,
/// object stored, entry immutable), look up for restore (own ref, then the default branch), record
/// access, quarantine, delete, evict over quota.
/// </summary>
public sealed class CacheEntryService(
    CacheDbContext db,
    ICacheReservations reservations,
    ICacheLookups lookups,
    IBlobStore blobs,
    UploadStaging staging,
    IOptions<CacheOptions> options,
    TimeProvider clock,
    ILogger<CacheEntryService> logger)
{
    private CacheOptions Options => options.Value;
    private DateTimeOffset Now => clock.GetUtcNow();

    /// <summary>Reserves (repository, job's ref, key, version) for the job. Keys and versions must already be valid.</summary>
    public async Task<ReserveResult> ReserveAsync(JobTokenClaims job, string key, string version, long? announcedSize, CancellationToken cancellationToken)
    {
        if (announcedSize is > 0 && announcedSize > Math.Min(Options.MaxObjectBytes, Options.ScopeQuotaOf(job.Repository, job.Ref))) return new(ReserveOutcome.TooLarge);

        var existing = await db.Entries.SingleOrDefaultAsync(
            e => e.Repository == job.Repository && e.Scope == job.Ref && e.Key == key && e.Version == version, cancellationToken);
        if (existing is { State: CacheEntryState.Committed }) return new(ReserveOutcome.AlreadyExists, existing);

        var reservation = CacheReservationNames.For(job.Repository, job.Ref, key, version);
        if (!await reservations.TryAcquireAsync(reservation, job.JobId, Options.UploadTimeout, cancellationToken)) return new(ReserveOutcome.Busy);

        try
        {
            if (existing is null)
            {
                existing = new CacheEntry { Repository = job.Repository, Scope = job.Ref, Key = key, Version = version };
                db.Entries.Add(existing);
            }
            else if (existing.ReservedByJobId != job.JobId || existing.State == CacheEntryState.Quarantined)
            {
                // A writer whose reservation lapsed, or a quarantined entry being replaced: start over.
                await staging.DeleteAsync(existing.Id, cancellationToken);
                if (existing.ObjectKey is { } stale) await blobs.DeleteAsync(stale, cancellationToken);
                existing.ObjectKey = null;
                existing.Sha256 = null;
                existing.CommittedAt = null;
            }
            existing.State = CacheEntryState.Reserved;
            existing.ReservedByJobId = job.JobId;
            existing.SizeBytes = announcedSize ?? 0;
            existing.CreatedAt = Now;
            existing.LastAccessedAt = Now;
            await db.SaveChangesAsync(cancellationToken);
            return new(ReserveOutcome.Reserved, existing);
        }
        catch (DbUpdateException)
        {
            // Another replica inserted the same entry between our check and our insert.
            await reservations.ReleaseAsync(reservation, job.JobId, cancellationToken);
            return new(ReserveOutcome.Busy);
        }
    }

    /// <summary>The job's own reserved entry with this key and version (v2 finalize names entries by key, not id).</summary>
    public Task<CacheEntry?> FindReservationAsync(JobTokenClaims job, string key, string version, CancellationToken cancellationToken) =>
        db.Entries.SingleOrDefaultAsync(e => e.Repository == job.Repository && e.Scope == job.Ref && e.Key == key && e.Version == version, cancellationToken);

    /// <summary>An entry of the job's repository by id; another repository's entry is "not found", never "forbidden".</summary>
    public Task<CacheEntry?> FindAsync(string repository, long id, CancellationToken cancellationToken) =>
        db.Entries.SingleOrDefaultAsync(e => e.Id == id && e.Repository == repository, cancellationToken);

    public Task<CacheEntry?> FindAsync(long id, CancellationToken cancellationToken) =>
        db.Entries.SingleOrDefaultAsync(e => e.Id == id, cancellationToken);

    /// <summary>Checks the job may write to <paramref name="entry"/>: it is its reservation and not committed yet.</summary>
    public static CommitOutcome? CheckWritable(CacheEntry entry, Guid jobId) =>
        entry.State != CacheEntryState.Reserved ? CommitOutcome.AlreadyCommitted
        : entry.ReservedByJobId != jobId ? CommitOutcome.NotYours
        : null;

    /// <summary>
    /// Commits what was uploaded for the entry: its length must equal <paramref name="declaredSize"/> and, when
    /// given, its SHA-256 must equal <paramref name="expectedSha256"/>. On any mismatch nothing is stored and the
    /// reservation is dropped; on success the SHA-256 is recorded, the object stored, and the repository's quota enforced.
    /// </summary>
    public async Task<CommitResult> CommitAsync(JobTokenClaims job, CacheEntry entry, long declaredSize, string? expectedSha256, CancellationToken cancellationToken)
    {
        if (entry.Repository != job.Repository) return new(CommitOutcome.NotFound);
        if (CheckWritable(entry, job.JobId) is { } refused) return new(refused, entry);

        if (staging.UploadedLength(entry.Id) is not { } length)
        {
            return new(CommitOutcome.NothingUploaded, entry, "nothing was uploaded for this entry (or the block list was never committed)");
        }
        if (length != declaredSize)
        {
            await DropReservationAsync(entry, cancellationToken);
            return new(CommitOutcome.SizeMismatch, entry, $"{length} bytes were uploaded, not the declared {declaredSize}; nothing was stored");
        }

        // The object is stored first (completing a multipart upload is what makes it); the hash comes with it.
        var stored = await staging.StoreAsync(entry, cancellationToken);
        var (sha256, objectKey) = (stored.Sha256, stored.ObjectKey);
        if (expectedSha256 is not null && !string.Equals(expectedSha256, sha256, StringComparison.OrdinalIgnoreCase))
        {
            await blobs.DeleteAsync(objectKey, CancellationToken.None);
            await DropReservationAsync(entry, cancellationToken);
            return new(CommitOutcome.HashMismatch, entry, $"the upload hashes to {sha256}, not the declared {expectedSha256}; nothing was stored");
        }

        entry.State = CacheEntryState.Committed;
        entry.SizeBytes = length;
        entry.Sha256 = sha256;
        entry.ObjectKey = objectKey;
        entry.CommittedAt = Now;
        entry.LastAccessedAt = Now;
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch
        {
            await blobs.DeleteAsync(objectKey, CancellationToken.None);
            throw;
        }
        await lookups.InvalidateAsync(entry.Repository, cancellationToken);
        await staging.DeleteAsync(entry.Id, cancellationToken);
        await reservations.ReleaseAsync(CacheReservationNames.For(entry.Repository, entry.Scope, entry.Key, entry.Version), job.JobId, cancellationToken);
        logger.LogInformation("Committed cache entry {EntryId} of {Repository} on {Scope} ({Bytes} bytes)", entry.Id, entry.Repository, entry.Scope, length);
        await EnforceQuotaAsync(entry.Repository, entry.Scope, keep: entry.Id, cancellationToken);
        return new(CommitOutcome.Committed, entry);
    }

    /// <summary>
    /// The entry a job on <paramref name="job"/>'s ref restores: in its own ref, then in the repository's default
    /// branch — in each, an exact key match first, then the newest entry whose key starts with each restore key in
    /// order. Entries of other refs are never visible. Answers (hits and misses) come from <see cref="ICacheLookups"/>
    /// when it has them; a hit's last-access time (LRU, expiry) is written at most once per <c>Cache:AccessTouchInterval</c>.
    /// </summary>
    public async Task<RestoreHit?> FindForRestoreAsync(JobTokenClaims job, string key, IReadOnlyList<string> restoreKeys, string version, CancellationToken cancellationToken)
    {
        var defaultBranch = Options.DefaultBranchOf(job.Repository);
        var useCache = Options.LookupCacheLifetime > TimeSpan.Zero;
        var lookup = useCache ? CacheLookupNames.For(job.Ref, defaultBranch, key, restoreKeys, version) : "";
        // The generation is taken before the database is read: see ICacheLookups.
        var probe = useCache ? await lookups.ProbeAsync(job.Repository, lookup, cancellationToken) : default;
        var cached = CacheLookupNames.Decode(probe.Answer, job.Ref, defaultBranch, version);
        var hit = cached is not null ? cached.Hit : await QueryForRestoreAsync(job, key, restoreKeys, version, cancellationToken);
        var changed = cached is null;

        var now = Now;
        var touchBefore = now - Options.AccessTouchInterval;
        if (hit is not null && hit.LastAccessedAt <= touchBefore)
        {
            // Conditional, so replicas (or requests) racing over the same stale entry write it once.
            await db.Entries.Where(e => e.Id == hit.Id && e.LastAccessedAt <= touchBefore)
                .ExecuteUpdateAsync(s => s.SetProperty(e => e.LastAccessedAt, now), cancellationToken);
            hit = hit with { LastAccessedAt = now };
            changed = true;
        }
        // One write of the answer as it now stands: a fresh one from the database, or a cached one just touched.
        if (changed && probe.Generation is { } generation)
        {
            await lookups.StoreAsync(job.Repository, generation, lookup, CacheLookupNames.Encode(new CachedLookup(hit), defaultBranch), cancellationToken);
        }
        return hit;
    }

    private async Task<RestoreHit?> QueryForRestoreAsync(JobTokenClaims job, string key, IReadOnlyList<string> restoreKeys, string version, CancellationToken cancellationToken)
    {
        foreach (var scope in ScopesVisibleTo(job))
        {
            var hit = await ExactHit(db, job.Repository, scope, version, key, cancellationToken);
            foreach (var prefix in restoreKeys)
            {
                if (hit is not null) break;
                hit = await NewestPrefixHit(db, job.Repository, scope, version, prefix, cancellationToken);
            }
            if (hit is not null) return hit;
        }
        return null;
    }

    // Projections, so nothing is tracked and only the answer's columns are read. Not EF compiled queries:
    // those bind to the first model they meet, and one process may hold a Postgres and a SQLite model
    // (the lookup cache answers repeated lookups without the database anyway).
    private static Task<RestoreHit?> ExactHit(CacheDbContext db, string repository, string scope, string version, string key, CancellationToken ct) => db.Entries
        .Where(e => e.Repository == repository && e.Scope == scope && e.Version == version && e.State == CacheEntryState.Committed && e.Key == key)
        .Select(e => new RestoreHit(e.Id, e.Scope, e.Key, e.Version, e.CommittedAt, e.LastAccessedAt, e.Sha256, e.SizeBytes, e.ObjectKey))
        .FirstOrDefaultAsync(ct);

    private static Task<RestoreHit?> NewestPrefixHit(CacheDbContext db, string repository, string scope, string version, string prefix, CancellationToken ct) => db.Entries
        .Where(e => e.Repository == repository && e.Scope == scope && e.Version == version && e.State == CacheEntryState.Committed && e.Key.StartsWith(prefix))
        .OrderByDescending(e => e.CommittedAt).ThenByDescending(e => e.Id)
        .Select(e => new RestoreHit(e.Id, e.Scope, e.Key, e.Version, e.CommittedAt, e.LastAccessedAt, e.Sha256, e.SizeBytes, e.ObjectKey))
        .FirstOrDefaultAsync(ct);

    /// <summary>The job's own ref, then the repository's default branch (once, if it is the same ref).</summary>
    public IEnumerable<string> ScopesVisibleTo(JobTokenClaims job)
    {
        yield return job.Ref;
        var defaultBranch = Options.DefaultBranchOf(job.Repository);
        if (defaultBranch != job.Ref) yield return defaultBranch;
    }

    /// <summary>Marks an entry whose object failed its integrity check: never served again, replaced by the next save.</summary>
    public async Task QuarantineAsync(CacheEntry entry, string reason, CancellationToken cancellationToken)
    {
        await db.Entries.Where(e => e.Id == entry.Id && e.State == CacheEntryState.Committed)
            .ExecuteUpdateAsync(s => s.SetProperty(e => e.State, CacheEntryState.Quarantined), cancellationToken);
        await lookups.InvalidateAsync(entry.Repository, cancellationToken);
        logger.LogError("Quarantined cache entry {EntryId} of {Repository}: {Reason}", entry.Id, entry.Repository, reason);
    }

    /// <summary>Deletes the entry, its object and anything staged for it.</summary>
    public async Task DeleteAsync(CacheEntry entry, CancellationToken cancellationToken)
    {
        if (entry.ObjectKey is { } objectKey) await blobs.DeleteAsync(objectKey, cancellationToken);
        await staging.DeleteAsync(entry.Id, cancellationToken);
        await db.Entries.Where(e => e.Id == entry.Id).ExecuteDeleteAsync(cancellationToken);
        // Cheap (a new generation), and the row's state as this caller saw it may be out of date: always.
        await lookups.InvalidateAsync(entry.Repository, cancellationToken);
    }

    /// <summary>
    /// Brings the repository within its quotas after <paramref name="writerScope"/> stored something (null: the janitor).
    /// First the writer's own ref is trimmed to its budget (<see cref="CacheOptions.ScopeQuotaOf"/>), least recently used
    /// first. Then, while the repository is over <c>Cache:RepositoryQuotaBytes</c>, entries of refs other than the default
    /// branch go, least recently used first; the default branch's own entries go only when the default branch wrote (or the
    /// janitor trims what the default branch alone holds beyond the quota). A write by another ref that still does not fit
    /// beside the default branch's entries is itself evicted: an untrusted ref can never push the default branch's entries out.
    /// </summary>
    public async Task<int> EnforceQuotaAsync(string repository, string? writerScope, long? keep, CancellationToken cancellationToken)
    {
        var defaultBranch = Options.DefaultBranchOf(repository);
        var stored = db.Entries.Where(e => e.Repository == repository && e.State != CacheEntryState.Reserved);
        var evicted = 0;
        if (writerScope is not null)
        {
            var own = stored.Where(e => e.Scope == writerScope);
            var ownUsed = await own.SumAsync(e => e.SizeBytes, cancellationToken);
            (evicted, _) = await EvictAsync(own.Where(e => e.Id != keep), ownUsed, Options.ScopeQuotaOf(repository, writerScope), repository, cancellationToken);
        }

        var used = await stored.SumAsync(e => e.SizeBytes, cancellationToken);
        int count;
        (count, used) = await EvictAsync(stored.Where(e => e.Scope != defaultBranch && e.Id != keep), used, Options.RepositoryQuotaBytes, repository, cancellationToken);
        evicted += count;
        var defaultMayShrink = writerScope is null || writerScope == defaultBranch;
        if (defaultMayShrink)
        {
            (count, used) = await EvictAsync(stored.Where(e => e.Scope == defaultBranch && e.Id != keep), used, Options.RepositoryQuotaBytes, repository, cancellationToken);
            evicted += count;
        }
        else if (used > Options.RepositoryQuotaBytes && keep is { } written)
        {
            (count, _) = await EvictAsync(stored.Where(e => e.Id == written), used, Options.RepositoryQuotaBytes, repository, cancellationToken);
            evicted += count;
        }
        return evicted;
    }

    /// <summary>Every scope of every repository over its budget, then every repository over its quota (the janitor's pass).</summary>
    public async Task<int> EnforceAllQuotasAsync(CancellationToken cancellationToken)
    {
        var scopes = await db.Entries.Where(e => e.State != CacheEntryState.Reserved)
            .GroupBy(e => new { e.Repository, e.Scope })
            .Select(g => new { g.Key.Repository, g.Key.Scope, Bytes = g.Sum(e => e.SizeBytes) })
            .ToListAsync(cancellationToken);
        var evicted = 0;
        foreach (var scope in scopes.Where(s => s.Bytes > Options.ScopeQuotaOf(s.Repository, s.Scope)))
        {
            var entries = db.Entries.Where(e => e.Repository == scope.Repository && e.Scope == scope.Scope && e.State != CacheEntryState.Reserved);
            evicted += (await EvictAsync(entries, scope.Bytes, Options.ScopeQuotaOf(scope.Repository, scope.Scope), scope.Repository, cancellationToken)).Evicted;
        }
        foreach (var repository in scopes.Select(s => s.Repository).Distinct(StringComparer.Ordinal))
        {
            evicted += await EnforceQuotaAsync(repository, writerScope: null, keep: null, cancellationToken);
        }
        return evicted;
    }

    /// <summary>Deletes <paramref name="candidates"/>, least recently used first, while <paramref name="used"/> exceeds <paramref name="limit"/>.</summary>
    private async Task<(int Evicted, long Used)> EvictAsync(IQueryable<CacheEntry> candidates, long used, long limit, string repository, CancellationToken cancellationToken)
    {
        var evicted = 0;
        while (used > limit)
        {
            var victims = await candidates.OrderBy(e => e.LastAccessedAt).ThenBy(e => e.Id).Take(50).AsNoTracking().ToListAsync(cancellationToken);
            if (victims.Count == 0) break;
            foreach (var victim in victims)
            {
                if (used <= limit) break;
                await DeleteAsync(victim, cancellationToken);
                used -= victim.SizeBytes;
                evicted++;
                logger.LogInformation("Evicted cache entry {EntryId} of {Repository} on {Scope} (quota)", victim.Id, repository, victim.Scope);
            }
        }
        return (evicted, used);
    }

    private async Task DropReservationAsync(CacheEntry entry, CancellationToken cancellationToken)
    {
        await reservations.ReleaseAsync(CacheReservationNames.For(entry.Repository, entry.Scope, entry.Key, entry.Version), entry.ReservedByJobId, cancellationToken);
        await DeleteAsync(entry, cancellationToken);
    }
}
