namespace EphemeralCI.Intake.Model;

/// <summary>
/// A piece of a job's log as the runner sent it. <see cref="Offset"/> and <see cref="Length"/> are
/// the runner's byte positions (they make retries idempotent); <see cref="Text"/> is what we keep,
/// which is shorter once the per-job cap is reached.
/// </summary>
public sealed class JobLogChunk
{
    public long Id { get; set; }
    public Guid JobId { get; set; }
    public long Offset { get; set; }
    public int Length { get; set; }
    public required string Text { get; set; }
    /// <summary>UTF-8 bytes of <see cref="Text"/>, summed to enforce the per-job cap.</summary>
    public int StoredBytes { get; set; }
    public DateTimeOffset At { get; set; }

    public long End => Offset + Length;
}
