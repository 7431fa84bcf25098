using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.JobTokens;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Cache.Entries;

/// <summary>
/// Writes down each entry-cache answer a job attempt gets (restore lookups, hit or miss, and commits) before the
/// answer leaves, so the attestation lists what the cache served rather than what the runner reports — including
/// restores a step's own <c>@actions/cache</c> made. Build-cache objects (ccache, Bazel: thousands per job,
/// content-addressed) are not recorded one by one.
/// </summary>
public sealed class CacheUseLog(CacheDbContext db, TimeProvider clock) : ICacheUseLog
{
    public const string ActionsV1 = "actions-v1";
    public const string ActionsV2 = "actions-v2";

    public Task RecordRestoreAsync(JobTokenClaims job, string protocol, string key, string version, RestoreHit? hit, CancellationToken ct) =>
        RecordAsync(new CacheUse
        {
            JobId = job.JobId, Attempt = job.Attempt, Kind = CacheUseKinds.Restore, Protocol = protocol, Key = key, Version = version,
            Hit = hit is not null, MatchedKey = hit?.Key, EntryId = hit?.Id, Scope = hit?.Scope, Sha256 = hit?.Sha256, SizeBytes = hit?.SizeBytes ?? 0,
        }, ct);

    public Task RecordSaveAsync(JobTokenClaims job, string protocol, CacheEntry saved, CancellationToken ct) =>
        RecordAsync(new CacheUse
        {
            JobId = job.JobId, Attempt = job.Attempt, Kind = CacheUseKinds.Save, Protocol = protocol, Key = saved.Key, Version = saved.Version,
            Hit = true, EntryId = saved.Id, Scope = saved.Scope, Sha256 = saved.Sha256, SizeBytes = saved.SizeBytes,
        }, ct);

    public async Task<IReadOnlyList<CacheUseRecord>> ForAttemptAsync(Guid jobId, int attempt, CancellationToken ct) =>
        await db.Uses.AsNoTracking().Where(u => u.JobId == jobId && u.Attempt == attempt).OrderBy(u => u.Id)
            .Select(u => new CacheUseRecord(u.Kind, u.Protocol, u.Key, u.Version, u.Hit, u.MatchedKey, u.Scope, u.Sha256, u.SizeBytes, u.At))
            .ToListAsync(ct);

    /// <summary>Deletes records older than <paramref name="before"/> (the janitor; attestations are made minutes after a job).</summary>
    public Task<int> DeleteOlderThanAsync(DateTimeOffset before, CancellationToken ct) =>
        db.Uses.Where(u => u.At < before).ExecuteDeleteAsync(ct);

    // Its own statement, whatever else the request's context tracks: the record must be written, not just queued.
    private async Task RecordAsync(CacheUse use, CancellationToken ct)
    {
        use.At = clock.GetUtcNow();
        db.Uses.Add(use);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        finally
        {
            db.Entry(use).State = EntityState.Detached;
        }
    }
}
