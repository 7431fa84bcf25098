using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;

namespace EphemeralCI.Intake.Model;

/// <summary>A job accepted by the intake, from queued to one terminal state.</summary>
public sealed class Job
{
    public Guid Id { get; set; }
    public string? Name { get; set; }
    public required string Repository { get; set; }
    public required string Ref { get; set; }
    public required string CommitSha { get; set; }
    public required string RunnerTemplate { get; set; }
    /// <summary>The deployment environment the job targets (<c>production</c>), when its submitter was allowed one; it goes into the job token.</summary>
    public string? Environment { get; set; }
    /// <summary>Who vouched for the job's identity: <c>api-key:{id}</c>, or <c>oidc:{trust policy}:{subject}</c> for a federated token.</summary>
    public string? SubmittedBy { get; set; }
    /// <summary>SHA-256 of the runner template the job's runner was made from ("sha256:…"), as the provisioner reported it: the audit of what it ran in.</summary>
    public string? RunnerTemplateHash { get; set; }
    /// <summary>The accepted <see cref="JobSpec"/> (timeout resolved), as JSON; the runner receives it as is.</summary>
    public required string Spec { get; set; }
    public JobStatus Status { get; private set; } = JobStatus.Queued;
    public string? StatusReason { get; private set; }
    public int? ExitCode { get; private set; }
    public int TimeoutSeconds { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? StartedAt { get; private set; }
    public DateTimeOffset? FinishedAt { get; private set; }

    // Idempotent submission: (ApiKeyId, IdempotencyKey) is unique; RequestHash tells a retry from a misuse.
    public string? IdempotencyKey { get; set; }
    public Guid? ApiKeyId { get; set; }
    public string? RequestHash { get; set; }

    /// <summary>The W3C trace context of the submission, handed to the agent so its reports join the job's trace.</summary>
    public string? TraceParent { get; init; }

    /// <summary>
    /// SHA-256 (hex) of the key the runner agent sent when it first fetched the job — before any step
    /// could run. Every later report (logs, steps, caches, the result) must carry the same key: job
    /// code that somehow obtained the job token still cannot speak for the agent.
    /// </summary>
    public string? AgentKeyHash { get; private set; }

    /// <summary>1, and one more each time the job starts again on a new runner after its runner was lost (<c>retry.infrastructure</c>).</summary>
    public int Attempt { get; private set; } = 1;
    /// <summary>Where this attempt's log begins in the job's one log: each attempt's agent counts its offsets from 0.</summary>
    public long LogBase { get; private set; }
    /// <summary>This attempt's runner was lost and another attempt is allowed: it starts once that runner is destroyed.</summary>
    public bool RetryPending { get; private set; }
    /// <summary>The latest attempt whose runner was reported destroyed (null: none yet).</summary>
    public int? DestroyedAttempt { get; private set; }

    /// <summary>Postgres xmin: concurrent status changes (runner, provisioner, cancel) do not overwrite each other.</summary>
    public uint Version { get; set; }

    /// <summary>Binds the job to the agent that fetched it first; the same agent may fetch again (a retry), another may not.</summary>
    public AgentBinding BindAgent(string keyHash)
    {
        if (AgentKeyHash is null)
        {
            AgentKeyHash = keyHash;
            return AgentBinding.Bound;
        }
        return AgentKeyHash == keyHash ? AgentBinding.Same : AgentBinding.Other;
    }

    /// <summary>How many more attempts the spec allows after a lost runner (<c>retry.infrastructure</c>, 0 by default).</summary>
    public int InfrastructureRetries() =>
        System.Text.Json.JsonSerializer.Deserialize<JobSpec>(Spec, System.Text.Json.JsonSerializerOptions.Web)?.Retry?.Infrastructure ?? 0;

    /// <summary>
    /// This attempt's runner was lost. Returns true when the job will start again (it is not over and has
    /// attempts left): it stays as it is until that runner is destroyed. False: the loss decides the job.
    /// </summary>
    public bool RetryAfterLoss(int attempt)
    {
        if (Status.IsTerminal() || attempt != Attempt || Attempt > InfrastructureRetries()) return false;
        RetryPending = true;
        return true;
    }

    /// <summary>Records that the runner of <paramref name="attempt"/> is destroyed.</summary>
    public void RunnerDestroyed(int attempt)
    {
        if (DestroyedAttempt is null || attempt > DestroyedAttempt) DestroyedAttempt = attempt;
    }

    /// <summary>A retry is due: this attempt's runner was lost and is destroyed, so a new one may be made.</summary>
    public bool NextAttemptDue => RetryPending && DestroyedAttempt == Attempt && !Status.IsTerminal();

    /// <summary>
    /// Starts the next attempt: queued again with no agent bound (the new runner's agent binds itself), its log
    /// continuing after <paramref name="logLength"/> bytes. The one way a job goes back to queued.
    /// </summary>
    public void StartNextAttempt(long logLength)
    {
        if (!NextAttemptDue) throw new InvalidOperationException($"Job {Id} has no retry due.");
        Attempt++;
        LogBase = logLength;
        RetryPending = false;
        AgentKeyHash = null;
        Status = JobStatus.Queued;
    }

    /// <summary>The spec as the runner gets it.</summary>
    public JobSpec ParsedSpec() => System.Text.Json.JsonSerializer.Deserialize<JobSpec>(Spec, System.Text.Json.JsonSerializerOptions.Web)!;

    /// <summary>
    /// A session's next command becomes its next step. Refused (false) unless this is a session that has not finished,
    /// has exactly <paramref name="expectedCount"/> commands (so two racing commands cannot both be appended) and room for one more.
    /// </summary>
    public bool AppendSessionCommand(StepSpec command, int expectedCount)
    {
        var spec = ParsedSpec();
        var steps = spec.Steps ?? [];
        if (spec.Session is null || Status.IsTerminal() || steps.Count != expectedCount || steps.Count >= SessionSpec.MaxCommands) return false;
        Spec = System.Text.Json.JsonSerializer.Serialize(spec with { Steps = [.. steps, command] }, System.Text.Json.JsonSerializerOptions.Web);
        return true;
    }

    /// <summary>The message that asks the provisioner for this attempt's runner.</summary>
    public RunJob RunJobMessage(DateTimeOffset queuedAt) =>
        new(Id, RunnerTemplate, Repository, Ref, TimeoutSeconds, queuedAt, CommitSha, Environment, Attempt);

    /// <summary>
    /// Moves the job forward. Returns false, changing nothing, when the move would go backwards
    /// or leave a terminal state: terminal states never change again.
    /// </summary>
    public bool TryMoveTo(JobStatus next, DateTimeOffset at, string? reason = null, int? exitCode = null)
    {
        if (!JobTransitions.CanMove(Status, next)) return false;
        Status = next;
        if (reason is not null) StatusReason = reason;
        if (exitCode is not null) ExitCode = exitCode;
        if (next == JobStatus.Running) StartedAt ??= at;
        if (next.IsTerminal()) FinishedAt = at;
        return true;
    }
}

public enum AgentBinding { Bound, Same, Other }

/// <summary>queued → provisioning → running → terminal; steps may be skipped, never reversed.</summary>
public static class JobTransitions
{
    public static bool CanMove(JobStatus from, JobStatus to)
    {
        if (from.IsTerminal() || from == to) return false;
        return Rank(to) > Rank(from);
    }

    private static int Rank(JobStatus status) => status switch
    {
        JobStatus.Queued => 0,
        JobStatus.Provisioning => 1,
        JobStatus.Running => 2,
        _ => 3, // every terminal state
    };
}
