namespace EphemeralCI.Cache.Infrastructure;

/// <summary>Where an entry is in its life: reserved by one writer, committed (immutable), or quarantined (failed its integrity check).</summary>
public enum CacheEntryState
{
    Reserved = 0,
    Committed = 1,
    Quarantined = 2,
}

/// <summary>
/// One cache entry: repository + scope (the ref that saved it) + key + version. Immutable once
/// committed; only its last-access time changes. Times are UTC instants: <c>timestamptz</c> on Postgres,
/// UTC ticks on SQLite (the all-in-one server's converter), so both order and compare them alike.
/// </summary>
public sealed class CacheEntry
{
    public const int MaxKeyLength = 512;
    public const int MaxVersionLength = 512;
    public const int MaxRepositoryLength = 256;
    public const int MaxScopeLength = 256;

    public long Id { get; set; }
    public required string Repository { get; set; }
    /// <summary>The git ref of the job that saved it (e.g. <c>refs/heads/main</c>, <c>refs/pull/7/merge</c>).</summary>
    public required string Scope { get; set; }
    public required string Key { get; set; }
    public required string Version { get; set; }
    public CacheEntryState State { get; set; }
    /// <summary>Bytes of the archive; the size announced at reservation until commit, then the size stored.</summary>
    public long SizeBytes { get; set; }
    /// <summary>Lowercase hex SHA-256 of the archive, recorded at commit and checked on every restore.</summary>
    public string? Sha256 { get; set; }
    /// <summary>Object key in the blob store; set at commit.</summary>
    public string? ObjectKey { get; set; }
    /// <summary>The job holding the reservation; only it may upload and commit.</summary>
    public Guid ReservedByJobId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? CommittedAt { get; set; }
    public DateTimeOffset LastAccessedAt { get; set; }
}
