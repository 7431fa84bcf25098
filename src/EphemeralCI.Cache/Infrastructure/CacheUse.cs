namespace EphemeralCI.Cache.Infrastructure;

/// <summary>
/// A restore lookup or save answered for one job attempt (<see cref="Contracts.Jobs.CacheUseRecord"/>): written by the
/// cache as it answers, read by the attestation, deleted after <c>Cache:UseRecordRetention</c>.
/// </summary>
public sealed class CacheUse
{
    public long Id { get; set; }
    public Guid JobId { get; set; }
    public int Attempt { get; set; }
    public required string Kind { get; set; }
    public required string Protocol { get; set; }
    public required string Key { get; set; }
    public required string Version { get; set; }
    public bool Hit { get; set; }
    public string? MatchedKey { get; set; }
    public long? EntryId { get; set; }
    public string? Scope { get; set; }
    public string? Sha256 { get; set; }
    public long SizeBytes { get; set; }
    public DateTimeOffset At { get; set; }
}
