namespace EphemeralCI.Contracts.Messages;

// Bus messages between the intake and the provisioner. Immutable; versioned by adding fields,
// never by changing the meaning of one. Consumers must be idempotent: the outbox delivers at
// least once, and MassTransit's MessageId is stable across redeliveries of one outbox row.

/// <summary>intake → provisioner: a job was accepted; create its one runner.</summary>
/// <param name="Environment">The deployment environment its submitter was allowed to name; it goes into the job token.</param>
/// <param name="Attempt">1, or the attempt after a runner of this job was lost (<c>retry.infrastructure</c>): a new
/// runner, made only once the previous one is destroyed. A RunJob of an older attempt than the provisioner knows is stale.</param>
public sealed record RunJob(
    Guid JobId,
    string RunnerTemplate,
    string Repository,
    string Ref,
    int TimeoutSeconds,
    DateTimeOffset QueuedAt,
    string? CommitSha = null,
    string? Environment = null,
    int Attempt = 1);

/// <summary>intake → provisioner: a job was cancelled; destroy its runner (or never create it).</summary>
public sealed record CancelJob(Guid JobId, DateTimeOffset RequestedAt);

/// <summary>provisioner → intake: the provisioner took the job and is creating its runner.</summary>
/// <param name="TemplateHash">SHA-256 of the runner template the runner is made from ("sha256:…"); null from older provisioners.</param>
public sealed record JobProvisioning(Guid JobId, string Backend, DateTimeOffset At, string? TemplateHash = null);

/// <summary>provisioner → intake: the job waits for a free slot (a concurrency limit is full); it starts, in order, when one frees.</summary>
public sealed record RunnerWaiting(Guid JobId, string Reason, DateTimeOffset At);

/// <summary>provisioner → intake: the runner exists and its agent is starting.</summary>
/// <param name="TemplateHash">SHA-256 of the runner template the runner was made from; null from older provisioners.</param>
/// <param name="Relaxations">What the template relaxed of the sandbox's defaults (e.g. user namespaces allowed); null or empty: nothing.</param>
public sealed record RunnerStarted(Guid JobId, string RunnerId, string Backend, DateTimeOffset At, string? TemplateHash = null, IReadOnlyList<string>? Relaxations = null);

/// <summary>provisioner → intake: the runner stopped, for the given reason.</summary>
/// <param name="Attempt">The job's attempt this runner ran (see <see cref="RunJob.Attempt"/>).</param>
public sealed record RunnerFinished(
    Guid JobId,
    string RunnerId,
    RunnerOutcome Outcome,
    int? ExitCode,
    string? Reason,
    DateTimeOffset At,
    int Attempt = 1);

/// <summary>provisioner → intake: the runner was torn down; <paramref name="Teardown"/> says whether an independent check found it all gone.</summary>
/// <param name="Teardown">What the teardown check looked at and found; null from older provisioners (not verified).</param>
/// <param name="Backend">Where the runner ran, and <paramref name="TemplateHash"/> what it was made from: said again here,
/// so a job whose RunnerStarted is handled after this message (consumers run concurrently) still has them when attested.</param>
/// <param name="Attempt">The job's attempt this runner ran (see <see cref="RunJob.Attempt"/>).</param>
public sealed record RunnerDestroyed(Guid JobId, string RunnerId, DateTimeOffset At, TeardownReport? Teardown = null, string? Backend = null, string? TemplateHash = null, int Attempt = 1);

/// <summary>
/// The result of the teardown check, made after the backend destroyed a runner by code apart from
/// that teardown. <see cref="Passed"/> only when every check of the last attempt passed.
/// </summary>
/// <param name="Attempts">How many times cleanup ran (a failed check makes it run again, up to a limit).</param>
/// <param name="Checks">The checks of the last attempt.</param>
/// <param name="Leftovers">What earlier attempts found ("attempt 1: cgroup: …"), so a leftover cleaned up on retry is still told.</param>
public sealed record TeardownReport(bool Passed, int Attempts, IReadOnlyList<TeardownCheck> Checks, IReadOnlyList<string>? Leftovers = null);

/// <summary>One thing the teardown check looked at (<c>cgroup</c>, <c>processes</c>, <c>kubernetes.job</c>…), whether it is gone, and what was found if not.</summary>
public sealed record TeardownCheck(string Name, bool Passed, string Target, string? Found = null);

public enum RunnerOutcome
{
    /// <summary>The runner agent exited on its own; its reported result stands.</summary>
    Exited,
    TimedOut,
    Cancelled,
    FailedToStart,
    /// <summary>The runner vanished (killed, provisioner restarted, node lost).</summary>
    Lost,
    /// <summary>The runner hit a limit of its template (memory, process count) and was stopped; the reason says which.</summary>
    LimitExceeded,
}

/// <summary>
/// provisioner → intake: a step in the life of the runner that the backend observed (on Kubernetes:
/// scheduled, image_pulled, running, exited, or waiting with Kubernetes' reason). Recorded in the
/// timeline as <c>runner.{Stage}</c>; informative only, it never changes the job's state.
/// </summary>
public sealed record RunnerProgress(Guid JobId, string Stage, string? Detail, DateTimeOffset At);
