using EphemeralCI.Contracts.Jobs;

namespace EphemeralCI.Contracts.Runner;

// The HTTP API the runner agent speaks to the intake, authenticated by its job token.
//   GET  /api/v1/runner/job                      -> RunnerJob
//   POST /api/v1/runner/logs?offset={bytes}      text/plain chunk (offset makes retries idempotent)
//   POST /api/v1/runner/events                   RunnerStepEvent
//   POST /api/v1/runner/cache-events             RunnerCacheEvent
//   POST /api/v1/runner/complete                 RunnerCompletion
// Every call carries the agent's key (ECI-Agent-Key); the first GET of the job binds it.
// The agent reaches the intake through a Unix socket the provisioner binds into the sandbox.

public static class RunnerApiRoutes
{
    public const string Job = "/api/v1/runner/job";
    public const string Logs = "/api/v1/runner/logs";
    public const string Events = "/api/v1/runner/events";
    public const string CacheEvents = "/api/v1/runner/cache-events";
    public const string Complete = "/api/v1/runner/complete";
    /// <summary>A session's commands from index <c>?from=</c> on (long-polls while there are none).</summary>
    public const string Commands = "/api/v1/runner/commands";
    /// <summary>An interactive session's terminal: a WebSocket carrying the pseudo-terminal's bytes (<see cref="TerminalMessages"/>).</summary>
    public const string Terminal = "/api/v1/runner/terminal";
}

public static class RunnerApiHeaders
{
    /// <summary>
    /// A random key the agent makes at start and keeps in memory only. The first fetch of the job binds
    /// it (before any step runs); every later call must carry it, so the job token alone cannot report
    /// for the agent.
    /// </summary>
    public const string AgentKey = "ECI-Agent-Key";
}

/// <param name="TraceParent">The W3C trace context of the job's submission: the agent sends it on its
/// reports, so they join the job's trace (telemetry only; nothing is decided by it).</param>
public sealed record RunnerJob(Guid JobId, JobSpec Spec, string? TraceParent = null);

/// <summary>A step started (ExitCode null) or finished (ExitCode set).</summary>
public sealed record RunnerStepEvent(string Type, int StepIndex, string StepName, int? ExitCode, DateTimeOffset At);

/// <summary>One of the job's caches restored (Result: hit, miss, failed) or saved (saved, skipped…, failed), with size and time.</summary>
/// <param name="Sha256">The archive's SHA-256 (hex) restored or saved; null on a miss or from older agents.</param>
/// <param name="Scope">The ref whose entries a hit was restored from (the job's own or its default branch's), as the cache said; null otherwise.</param>
public sealed record RunnerCacheEvent(string Operation, string Key, string Result, string? MatchedKey, long Bytes, long DurationMs, string? Error, DateTimeOffset At, string? Sha256 = null, string? Scope = null);

/// <summary>A session's commands from <paramref name="From"/> on; empty when none arrived within the long poll.</summary>
public sealed record RunnerCommands(int From, IReadOnlyList<StepSpec> Commands);

public sealed record RunnerCompletion(bool Succeeded, int ExitCode, int? FailedStepIndex);

/// <summary>Environment and files the provisioner gives the agent inside the sandbox.</summary>
public static class RunnerEnvironment
{
    /// <summary>Unix socket (inside the sandbox) that relays to the intake API.</summary>
    public const string IntakeSocket = "ECI_INTAKE_SOCKET";
    /// <summary>Alternative to the socket when the runner shares a network with the intake (Kubernetes).</summary>
    public const string IntakeUrl = "ECI_INTAKE_URL";
    /// <summary>Unix socket (inside the sandbox) that relays to the secrets broker.</summary>
    public const string SecretsSocket = "ECI_SECRETS_SOCKET";
    /// <summary>Alternative to the secrets socket when the runner can reach the broker directly.</summary>
    public const string SecretsUrl = "ECI_SECRETS_URL";
    /// <summary>Unix socket (inside the sandbox) that relays to the dependency cache.</summary>
    public const string CacheSocket = "ECI_CACHE_SOCKET";
    /// <summary>Alternative to the cache socket when the runner can reach the cache directly.</summary>
    public const string CacheUrl = "ECI_CACHE_URL";
    public const string JobId = "ECI_JOB_ID";
    public const string Workspace = "ECI_WORKSPACE";
    // The job token arrives as the first line on the agent's standard input, so it is never in an
    // environment or a file the job's steps could read.
}

/// <summary>
/// Why the intake refused a runner's call with 409, in the problem's <see cref="Extension"/> member: the agent stops quietly when its
/// job ended without it (a deleted session, a cancelled or timed-out job: nothing is left to report), and not when its attempt
/// was lost to another runner (a refusal it must not take for an end).
/// </summary>
public static class RunnerConflicts
{
    public const string Extension = "conflict";
    /// <summary>The job is over; its status is in the problem's <see cref="JobStatusExtension"/> member.</summary>
    public const string JobEnded = "job-ended";
    /// <summary>The job runs again as a later attempt on another runner.</summary>
    public const string AttemptOver = "attempt-over";
    public const string JobStatusExtension = "jobStatus";
}
