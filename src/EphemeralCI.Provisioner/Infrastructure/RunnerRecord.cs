using EphemeralCI.Contracts.Messages;

namespace EphemeralCI.Provisioner.Infrastructure;

/// <summary>Where a job's one runner is in its life. Only ever moves forward.</summary>
public enum RunnerState
{
    /// <summary>The job was cancelled before its RunJob arrived: no runner may ever start for it.</summary>
    Tombstone,
    /// <summary>Claimed, but a concurrency limit is full: starts, in arrival order, when a slot frees.</summary>
    Waiting,
    /// <summary>Claimed by the deduplicator; the backend is creating the runner.</summary>
    Provisioning,
    Running,
    /// <summary>Stopped (exited, killed, lost); teardown pending.</summary>
    Finished,
    /// <summary>
    /// Killed and cleaned up, so its concurrency slot is free; the independent teardown check (and any
    /// cleanup it asks for again) is still to come before it may be called destroyed.
    /// </summary>
    Released,
    /// <summary>Every process and file of the runner is gone.</summary>
    Destroyed,
}

/// <summary>
/// The one runner of one job. The primary key is the job id, so a second runner for the same job
/// cannot even be written: this row is what makes "one runner per job, ever" hold under redelivery.
/// </summary>
public sealed class RunnerRecord
{
    public Guid JobId { get; set; }
    public required string RunnerId { get; set; }
    public RunnerState State { get; set; }
    public string? Template { get; set; }
    /// <summary>SHA-256 of the template's content when the runner was made ("sha256:…").</summary>
    public string? TemplateHash { get; set; }
    public string? Backend { get; set; }
    public string? Repository { get; set; }
    public string? Ref { get; set; }
    /// <summary>The commit the job builds; goes into its identity token's claims.</summary>
    public string? CommitSha { get; set; }
    /// <summary>The deployment environment the job targets; goes into its identity token, so environment-bound secrets reach it.</summary>
    public string? Environment { get; set; }
    public int TimeoutSeconds { get; set; }
    /// <summary>Host process id of the sandbox (local backend), for kill and liveness after a restart.</summary>
    public int? ProcessId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? Deadline { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    public RunnerOutcome? Outcome { get; set; }
    public int? ExitCode { get; set; }
    public string? Reason { get; set; }
    public DateTimeOffset? DestroyedAt { get; set; }

    public static string RunnerIdFor(Guid jobId) => $"runner-{jobId:N}";
}
