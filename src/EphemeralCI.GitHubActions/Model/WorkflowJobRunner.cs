namespace EphemeralCI.GitHubActions.Model;

/// <summary>Where one workflow job stands with us. Every move is one method below; nothing else sets <see cref="WorkflowJobRunner.State"/>.</summary>
public enum RunnerState
{
    /// <summary>Seen queued and covered by a template; no JIT config asked for yet.</summary>
    Queued,
    /// <summary>Claimed by one launcher (the claim is the row's version): a JIT config is being asked for and the job submitted.</summary>
    Launching,
    /// <summary>An EphemeralCI job runs the one-job runner; <see cref="WorkflowJobRunner.EciJobId"/> and <see cref="WorkflowJobRunner.RunnerId"/> are set.</summary>
    Launched,
    /// <summary>Over: the runner (if any) is removed from GitHub and the EphemeralCI job is over or cancelled.</summary>
    Done,
    /// <summary>A launch that cannot be completed (GitHub answered 409, the job was refused): never retried with the same runner name.</summary>
    Abandoned,
}

/// <summary>
/// One GitHub workflow job and the one runner we start for it. Keyed by the workflow job's id, so a retried or
/// duplicated webhook finds the same row; the <see cref="Version"/> concurrency token makes the launch claim
/// single-winner across threads and processes. The JIT config itself is never stored.
/// </summary>
public sealed class WorkflowJobRunner
{
    public long Id { get; init; }
    public required string Repository { get; init; }
    public long RunId { get; init; }
    public long InstallationId { get; init; }
    public required string Ref { get; init; }
    public required string CommitSha { get; init; }
    public required string Labels { get; init; }
    /// <summary>The adapter template chosen; null when no template covers the labels (the row then only records that we saw it).</summary>
    public string? Template { get; init; }
    public RunnerState State { get; private set; }
    /// <summary>GitHub's last known status of the workflow job: queued, in_progress or completed.</summary>
    public string GitHubStatus { get; private set; } = "queued";
    /// <summary>Our runner's name at GitHub (<c>eci-{id}</c>), fixed by the launch claim.</summary>
    public string? RunnerName { get; private set; }
    /// <summary>The runner GitHub says took the workflow job (in_progress/completed deliveries); null while none did.</summary>
    public string? AssignedRunner { get; private set; }
    public long? RunnerId { get; private set; }
    public Guid? EciJobId { get; private set; }
    public string? Reason { get; private set; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; private set; }
    public int Version { get; private set; }

    /// <summary>A first sight; <paramref name="refused"/> says why no runner is started when no template is given.</summary>
    public static WorkflowJobRunner Seen(WorkflowJobEvent e, string? template, DateTimeOffset now, string? refused = null) => new()
    {
        Id = e.WorkflowJobId,
        Repository = e.Repository,
        RunId = e.RunId,
        InstallationId = e.InstallationId,
        Ref = e.Ref,
        CommitSha = e.CommitSha,
        Labels = string.Join(',', e.Labels),
        Template = template,
        State = template is null ? RunnerState.Done : RunnerState.Queued,
        Reason = template is null ? refused ?? "no template covers the labels" : null,
        GitHubStatus = e.Status,
        AssignedRunner = e.RunnerName,
        CreatedAt = now,
        UpdatedAt = now,
    };

    /// <summary>The launch claim: only a queued job that GitHub still has queued. The runner name is fixed here, once.</summary>
    public bool TryClaimLaunch(DateTimeOffset now)
    {
        if (State != RunnerState.Queued || GitHubStatus != "queued") return false;
        RunnerName = $"eci-{Id}";
        return Move(RunnerState.Launching, now, null);
    }

    public bool TryLaunched(long runnerId, Guid eciJobId, DateTimeOffset now)
    {
        if (State != RunnerState.Launching) return false;
        RunnerId = runnerId;
        EciJobId = eciJobId;
        return Move(RunnerState.Launched, now, null);
    }

    /// <summary>A registered runner that will not run (refused job): it is removed like a finished one.</summary>
    public bool TryAbandon(string reason, long? runnerId, DateTimeOffset now)
    {
        if (State != RunnerState.Launching) return false;
        RunnerId ??= runnerId;
        return Move(RunnerState.Abandoned, now, reason);
    }

    public bool TryFinish(string reason, DateTimeOffset now) =>
        State is RunnerState.Queued or RunnerState.Launched or RunnerState.Abandoned && Move(RunnerState.Done, now, reason);

    /// <summary>GitHub's status only moves forward (queued → in_progress → completed): an out-of-order delivery cannot undo a later one.</summary>
    public bool TryObserve(string status, string? assignedRunner, DateTimeOffset now)
    {
        if (Rank(status) <= Rank(GitHubStatus)) return false;
        GitHubStatus = status;
        AssignedRunner = assignedRunner ?? AssignedRunner;
        UpdatedAt = now;
        Version++;
        return true;
    }

    public bool GitHubCompleted => GitHubStatus == "completed";

    /// <summary>GitHub finished the workflow job without our runner (cancelled, or another runner took it): ours waits in vain.</summary>
    public bool CompletedWithoutOurRunner => GitHubCompleted && (AssignedRunner is null || AssignedRunner != RunnerName);

    private static int Rank(string status) => status switch { "queued" => 0, "waiting" => 0, "in_progress" => 1, "completed" => 2, _ => -1 };

    private bool Move(RunnerState to, DateTimeOffset now, string? reason)
    {
        State = to;
        Reason = reason is null ? Reason : WarmRunner.Truncate(reason);
        UpdatedAt = now;
        Version++;
        return true;
    }
}

/// <summary>What a <c>workflow_job</c> delivery (or the reconciler's listing) says about one workflow job.</summary>
public sealed record WorkflowJobEvent(
    long WorkflowJobId, long RunId, long InstallationId, string Repository, string Ref, string CommitSha,
    IReadOnlyList<string> Labels, string Status, string? RunnerName);
