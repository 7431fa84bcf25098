namespace EphemeralCI.Contracts.Jobs;

/// <summary>The names of the entries in a job's timeline.</summary>
public static class JobEventTypes
{
    public const string Queued = "job.queued";
    public const string CancelRequested = "job.cancel_requested";
    public const string Provisioning = "job.provisioning";
    /// <summary>The provisioner holds the job back (a concurrency limit is full); the description says which.</summary>
    public const string Waiting = "job.waiting";
    /// <summary>The runner was lost and the job may start again (<c>retry.infrastructure</c>): a new attempt follows its teardown.</summary>
    public const string Retrying = "job.retrying";
    public const string RunnerStarted = "runner.started";
    public const string StepStarted = "step.started";
    public const string StepFinished = "step.finished";
    /// <summary>A cache restored before the steps (hit or miss, size, time).</summary>
    public const string CacheRestore = "cache.restore";
    /// <summary>A cache saved after a successful job (or skipped), size and time.</summary>
    public const string CacheSave = "cache.save";
    public const string Succeeded = "job.succeeded";
    public const string Failed = "job.failed";
    public const string Cancelled = "job.cancelled";
    public const string TimedOut = "job.timed_out";
    /// <summary>The runner stopped (exit, timeout, cancel, failure to start, lost); the job's state follows from it.</summary>
    public const string RunnerFinished = "runner.finished";
    public const string RunnerDestroyed = "runner.destroyed";
    /// <summary>The teardown check found something of the runner left after cleanup (what, in the data).</summary>
    public const string RunnerLeftover = "runner.leftover";
    /// <summary>The job's signed attestation (a DSSE envelope, in the data); see docs/attestation.md.</summary>
    public const string Attested = "job.attested";

    public static string ForTerminal(JobStatus status) => status switch
    {
        JobStatus.Succeeded => Succeeded,
        JobStatus.Failed => Failed,
        JobStatus.Cancelled => Cancelled,
        JobStatus.TimedOut => TimedOut,
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "not a terminal status"),
    };
}
