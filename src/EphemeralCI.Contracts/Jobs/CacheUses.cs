namespace EphemeralCI.Contracts.Jobs;

/// <summary>Kinds of <see cref="CacheUseRecord"/>.</summary>
public static class CacheUseKinds
{
    public const string Restore = "restore";
    public const string Save = "save";
}

/// <summary>
/// One restore lookup or save the dependency cache itself answered for a job's attempt, recorded by the cache
/// from the job token it checked — not what the runner says it did. A restore hit names the entry handed out
/// (key, the ref scope it came from, its SHA-256); a miss only what was asked.
/// </summary>
/// <param name="Protocol">Which API served it: <c>actions-v1</c> (the toolkit's REST) or <c>actions-v2</c> (Twirp; the agent's job caches too).</param>
/// <param name="Key">The key asked for (a restore's primary key) or saved.</param>
/// <param name="MatchedKey">The hit entry's key (an exact or restore-key match); null on a miss and for saves.</param>
/// <param name="Scope">The ref whose entries the hit came from, or the save went into.</param>
public sealed record CacheUseRecord(
    string Kind, string Protocol, string Key, string Version, bool Hit, string? MatchedKey, string? Scope, string? Sha256, long SizeBytes, DateTimeOffset At);

/// <summary>
/// The dependency cache's record of what it served to each job attempt: the attestation's cache list comes from
/// here. In process in the all-in-one server; over the cache's admin listener (<c>GET /internal/v1/cache-uses</c>,
/// with <c>Cache:AttestationToken</c>) for a separately deployed intake.
/// </summary>
public interface ICacheUseLog
{
    /// <summary>What the cache served to <paramref name="jobId"/>'s attempt <paramref name="attempt"/>, oldest first.</summary>
    Task<IReadOnlyList<CacheUseRecord>> ForAttemptAsync(Guid jobId, int attempt, CancellationToken ct);
}
