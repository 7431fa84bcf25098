namespace EphemeralCI.GitHubActions.Model;

/// <summary>Where one warm runner stands. Only <see cref="Launching"/> and <see cref="Idle"/> hold a slot of the pool.</summary>
public enum WarmRunnerState
{
    /// <summary>The slot is claimed (the row's insert is the claim): a JIT config is being asked for and the job submitted.</summary>
    Launching,
    /// <summary>Registered at GitHub and running, no workflow job yet.</summary>
    Idle,
    /// <summary>GitHub gave it a workflow job: out of the pool (its slot is refilled), removed once its EphemeralCI job is over.</summary>
    Busy,
    /// <summary>Over: removed from GitHub and its EphemeralCI job over or cancelled.</summary>
    Done,
}

/// <summary>
/// One warm runner of a template's <c>MinIdle</c> pool: registered with a JIT config generated without a workflow job,
/// waiting for whichever queued job GitHub gives it. A slot (<see cref="Slot"/> below <c>MinIdle</c>) is held by at most
/// one Launching or Idle row — a unique partial index — so concurrent passes and replicas cannot overfill the pool;
/// the <see cref="Version"/> token makes every move single-winner. The JIT config itself is never stored.
/// </summary>
public sealed class WarmRunner
{
    public const string NamePrefix = "eci-warm-";

    /// <summary>The runner's name at GitHub (<c>eci-warm-…</c>, random): fixed before GitHub is asked, never asked for twice.</summary>
    public required string Name { get; init; }
    public required string Template { get; init; }
    /// <summary>Where it is registered: the repository (<c>owner/name</c>) for repository runners, the organization for organization runners.</summary>
    public required string Scope { get; init; }
    public int Slot { get; init; }
    /// <summary>An organization runner (its scope is an owner, not <c>owner/name</c>).</summary>
    public bool Organization => !Scope.Contains('/');
    public long InstallationId { get; init; }
    public WarmRunnerState State { get; private set; }
    public long? RunnerId { get; private set; }
    public Guid? EciJobId { get; private set; }
    /// <summary>The workflow job GitHub gave it (from the in_progress delivery); null while idle or when only its removal told us.</summary>
    public long? WorkflowJobId { get; private set; }
    public string? Reason { get; private set; }
    public DateTimeOffset CreatedAt { get; init; }
    /// <summary>Since when it has been idle (registered and its job submitted): the idle age is measured from here.</summary>
    public DateTimeOffset? IdleSince { get; private set; }
    public DateTimeOffset UpdatedAt { get; private set; }
    public int Version { get; private set; }

    public static bool IsWarmName(string? runnerName) => runnerName?.StartsWith(NamePrefix, StringComparison.Ordinal) == true;

    public static WarmRunner Claim(string template, string scope, int slot, long installationId, DateTimeOffset now) => new()
    {
        Name = NamePrefix + Guid.NewGuid().ToString("N")[..20],
        Template = template,
        Scope = scope,
        Slot = slot,
        InstallationId = installationId,
        State = WarmRunnerState.Launching,
        CreatedAt = now,
        UpdatedAt = now,
    };

    public bool TryIdle(long runnerId, Guid eciJobId, DateTimeOffset now)
    {
        if (State != WarmRunnerState.Launching) return false;
        RunnerId = runnerId;
        EciJobId = eciJobId;
        IdleSince = now;
        return Move(WarmRunnerState.Idle, now, null);
    }

    /// <summary>GitHub gave it a workflow job (a delivery naming it, or GitHub refusing to remove it because it is busy).</summary>
    public bool TryTaken(long? workflowJobId, DateTimeOffset now)
    {
        if (State is not (WarmRunnerState.Launching or WarmRunnerState.Idle)) return false;
        WorkflowJobId = workflowJobId;
        return Move(WarmRunnerState.Busy, now, null);
    }

    public bool TryEnd(string reason, long? runnerId, DateTimeOffset now)
    {
        if (State == WarmRunnerState.Done) return false;
        RunnerId ??= runnerId;
        return Move(WarmRunnerState.Done, now, reason);
    }

    private bool Move(WarmRunnerState to, DateTimeOffset now, string? reason)
    {
        State = to;
        Reason = reason is null ? Reason : Truncate(reason);
        UpdatedAt = now;
        Version++;
        return true;
    }

    /// <summary>Reasons quote other services' answers: cut to the column's length so the move itself cannot fail.</summary>
    internal static string Truncate(string reason) => reason.Length <= 500 ? reason : reason[..497] + "...";
}
