namespace EphemeralCI.Intake.Model;

/// <summary>One entry of a job's timeline (type from <see cref="EphemeralCI.Contracts.Jobs.JobEventTypes"/>).</summary>
public sealed class JobEvent
{
    public long Id { get; set; }
    public Guid JobId { get; set; }
    public required string Type { get; set; }
    public DateTimeOffset At { get; set; }
    public string? Message { get; set; }
    /// <summary>Optional structured detail, stored as jsonb.</summary>
    public string? Data { get; set; }
    /// <summary>The bus message (or runner call) that caused this entry; unique per job so redeliveries add nothing.</summary>
    public Guid? SourceMessageId { get; set; }
}
