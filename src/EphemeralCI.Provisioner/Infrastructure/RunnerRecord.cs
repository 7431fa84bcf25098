using EphemeralCI.Contracts.Messages;

namespace EphemeralCI.Provisioner.Infrastructure;

/// <summary>
/// Where a job's one runner is in its life. Moves forward only, except that a runner whose start was cut
/// short (Provisioning) may queue again (Waiting); <see cref="RunnerRecord.MoveTo"/> enforces it.
/// </summary>
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
    private RunnerState _state;

    public Guid JobId { get; set; }
    public required string RunnerId { get; set; }
    /// <summary>
    /// The job's attempt this runner runs: 1, or more when the job started again after a lost runner. A later
    /// attempt replaces the row of a destroyed earlier one (still one row, one runner at a time, per job).
    /// </summary>
    public int Attempt { get; set; } = 1;

    /// <summary>Set when the row is made; changed afterwards only by <see cref="MoveTo"/> and the methods that call it.</summary>
    public RunnerState State { get => _state; init => _state = value; }
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

    /// <summary>
    /// The provisioner instance that owns this runner (claimed it, or adopted it from an instance that
    /// stopped heartbeating); only it starts, watches, cancels or reconciles it. Null on rows older than instances.
    /// </summary>
    public string? Instance { get; set; }

    /// <summary>The W3C trace context of the RunJob that created it: a start after a wait continues the job's trace.</summary>
    public string? TraceParent { get; init; }

    /// <summary>A cancel that reached another instance than the owner: the owner carries it out.</summary>
    public DateTimeOffset? CancelRequestedAt { get; set; }

    /// <summary>The runner id of a job's attempt: the first keeps the name runners always had.</summary>
    public static string RunnerIdFor(Guid jobId, int attempt = 1) => attempt > 1 ? $"runner-{jobId:N}-{attempt}" : $"runner-{jobId:N}";

    /// <summary>Whether a runner in <paramref name="from"/> may move to <paramref name="to"/>.</summary>
    public static bool CanMove(RunnerState from, RunnerState to) => (from, to) switch
    {
        (RunnerState.Waiting, RunnerState.Provisioning) => true,
        // A start cut short (a crash, a broker outage) queues again; a claim over a limit waits.
        (RunnerState.Provisioning, RunnerState.Waiting) => true,
        (RunnerState.Provisioning, RunnerState.Running) => true,
        // Cancelled while waiting, failed to start, or over: every live state can finish.
        (RunnerState.Waiting or RunnerState.Provisioning or RunnerState.Running, RunnerState.Finished) => true,
        (RunnerState.Finished, RunnerState.Released) => true,
        (RunnerState.Finished or RunnerState.Released, RunnerState.Destroyed) => true,
        _ => false,
    };

    /// <summary>The one place a runner's state changes. Throws on a move out of order: that is a bug, never a runtime condition.</summary>
    public void MoveTo(RunnerState next)
    {
        if (!CanMove(_state, next)) throw new InvalidOperationException($"Runner {RunnerId} of job {JobId} cannot move from {_state} to {next}.");
        _state = next;
    }

    /// <summary>Its process exists: watched from now until <paramref name="deadline"/>.</summary>
    public void Start(int? processId, DateTimeOffset at, DateTimeOffset deadline)
    {
        MoveTo(RunnerState.Running);
        ProcessId = processId;
        StartedAt = at;
        Deadline = deadline;
    }

    public void Finish(RunnerOutcome outcome, int? exitCode, string? reason, DateTimeOffset at)
    {
        MoveTo(RunnerState.Finished);
        FinishedAt = at;
        Outcome = outcome;
        ExitCode = exitCode;
        Reason = reason;
    }

    public void Destroy(DateTimeOffset at)
    {
        MoveTo(RunnerState.Destroyed);
        DestroyedAt = at;
    }
}
