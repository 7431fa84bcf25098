using EphemeralCI.Contracts.Jobs;

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
