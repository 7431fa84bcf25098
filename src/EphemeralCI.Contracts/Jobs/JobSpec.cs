namespace EphemeralCI.Contracts.Jobs;

/// <summary>
/// What a CI system asks EphemeralCI to run. Fields are nullable because this is also the wire
/// shape of untrusted input: the intake validates it and reports every missing field at once.
/// </summary>
public sealed record JobSpec
{
    public string? Name { get; init; }
    public string? Repository { get; init; }
    public string? Ref { get; init; }
    public string? CommitSha { get; init; }
    public string? RunnerTemplate { get; init; }
    /// <summary>The deployment environment the job targets (e.g. <c>production</c>): only submitters allowed it may name it, and secrets bound to an environment reach only its jobs.</summary>
    public string? Environment { get; init; }
    public IReadOnlyList<StepSpec>? Steps { get; init; }
    public IReadOnlyDictionary<string, string>? Env { get; init; }
    /// <summary>Names of environment variables (job's or a step's) whose values the agent masks in the log like secrets' (a credential handed in by a trusted submitter, e.g. a GitHub JIT runner config).</summary>
    public IReadOnlyList<string>? MaskedEnv { get; init; }
    public int? TimeoutSeconds { get; init; }
    /// <summary>Names of secrets the job asks for; values come from the secrets broker, never from here.</summary>
    public IReadOnlyList<string>? Secrets { get; init; }
    public IReadOnlyList<CacheSpec>? Caches { get; init; }
    /// <summary>The commit in the workspace before the first step (null: the defaults; <c>false</c>: none). See <see cref="CheckoutSpec"/>.</summary>
    public CheckoutSpec? Checkout { get; init; }
    /// <summary>What to do when the job's runner is lost (not when its steps fail). See <see cref="RetrySpec"/>.</summary>
    public RetrySpec? Retry { get; init; }
    /// <summary>Set only on a session (<c>POST /api/v1/sessions</c>): a held runner whose steps arrive one at a time as commands.</summary>
    public SessionSpec? Session { get; init; }
}

/// <summary>
/// A held runner: the job's steps are the session's commands, appended while it runs. The runner ends when the
/// session is deleted (cancelled), its <see cref="JobSpec.TimeoutSeconds"/> passes, or no command arrives for
/// <see cref="IdleTimeoutSeconds"/>.
/// </summary>
public sealed record SessionSpec
{
    public const int DefaultIdleTimeoutSeconds = 600;
    public const int MinIdleTimeoutSeconds = 5;
    public const int MaxIdleTimeoutSeconds = 3600;
    /// <summary>Commands one session may run (the spec holds them all).</summary>
    public const int MaxCommands = 500;

    public int? IdleTimeoutSeconds { get; init; }

    /// <summary>
    /// An interactive shell (<c>eci shell</c>): the runner runs one login-less <c>bash -i</c> on a pseudo-terminal, reached through
    /// <c>/api/v1/sessions/{id}/terminal</c> (a WebSocket), instead of taking commands. The shell's exit code is the session's.
    /// </summary>
    public bool? Interactive { get; init; }
}

/// <summary>
/// <c>retry: {infrastructure: N}</c>: when the job's runner is lost (its machine or provisioner died, its pod was
/// evicted), start the job again on a new runner, up to N more times (0–3, default 0). A job whose own steps
/// failed, timed out or hit a limit is never retried; a job retried runs its steps from the first again.
/// </summary>
public sealed record RetrySpec
{
    public const int MaxInfrastructure = 3;

    public int? Infrastructure { get; init; }
}

public sealed record StepSpec
{
    public string? Name { get; init; }
    /// <summary>A bash script, run with <c>-eo pipefail</c> in the job's workspace.</summary>
    public string? Run { get; init; }
    public IReadOnlyDictionary<string, string>? Env { get; init; }
}

public sealed record CacheSpec
{
    public string? Key { get; init; }
    public IReadOnlyList<string>? RestoreKeys { get; init; }
    public IReadOnlyList<string>? Paths { get; init; }
}
