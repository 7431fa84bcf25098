using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;

namespace EphemeralCI.Provisioner.Backends;

/// <summary>Everything a backend needs to create one job's runner.</summary>
public sealed record RunnerLaunch(
    Guid JobId,
    string RunnerId,
    string TemplateName,
    RunnerTemplateDefinition Template,
    string JobToken,
    DateTimeOffset Deadline);

/// <summary>Identifies a runner for kill/destroy/liveness, also after a provisioner restart (from the row).</summary>
/// <param name="CreatedAt">When its row was claimed (nothing of the runner is older, bar a warm sandbox's own start); null if not known.</param>
public sealed record RunnerRef(Guid JobId, string RunnerId, int? ProcessId, DateTimeOffset? CreatedAt = null);

/// <summary>A started runner. <see cref="Exited"/> completes with the agent's exit code when the runner stops on its own or is killed.</summary>
public sealed record RunnerHandle(string RunnerId, int? ProcessId, Task<int> Exited)
{
    /// <summary>Read once <see cref="Exited"/> completed: set when the backend ended the runner for a reason it knows better than an exit code (an image that cannot be pulled, a pod that cannot be scheduled or was evicted).</summary>
    public Func<RunnerFailure?> Failure { get; init; } = static () => null;
}

/// <summary>How and why a backend ended a runner itself; becomes RunnerFinished's outcome and reason.</summary>
public sealed record RunnerFailure(RunnerOutcome Outcome, string Reason);

/// <summary>A place runners are created: the local bubblewrap sandbox now, Kubernetes later.</summary>
public interface IRunnerBackend
{
    /// <summary>The name templates use in <c>Backend</c> (e.g. "local").</summary>
    string Name { get; }

    /// <summary>
    /// True when a runner exists only on the machine of the provisioner that started it (a local
    /// sandbox): another instance can neither kill nor check it. False when any instance reaches it (Kubernetes).
    /// </summary>
    bool RunnersAreMachineBound => false;

    /// <summary>Null when this machine can create runners of this backend, else what is missing and how to fix it.</summary>
    string? MissingPrerequisite();

    /// <summary>Creates the runner and starts its agent with the job token. Throws <see cref="RunnerStartException"/> with a readable reason.</summary>
    Task<RunnerHandle> StartAsync(RunnerLaunch launch, CancellationToken ct);

    /// <summary>
    /// Watches a running runner this process did not start — handed over by an instance that stopped,
    /// adopted from one that died, or started before this process restarted. Its handle, or null when
    /// the backend cannot reach it from here (<see cref="RunnersAreMachineBound"/>) or it is gone.
    /// </summary>
    Task<RunnerHandle?> ReattachAsync(RunnerRef runner, CancellationToken ct) => Task.FromResult<RunnerHandle?>(null);

    /// <summary>Kills every process of the runner and returns once none is left. Idempotent.</summary>
    Task KillAsync(RunnerRef runner, CancellationToken ct);

    /// <summary>Removes everything else the runner had (workspace, control socket). Idempotent; call after <see cref="KillAsync"/>.</summary>
    Task DestroyAsync(RunnerRef runner, CancellationToken ct);

    /// <summary>The resource limit the runner hit (out of memory, process limit), or null. Polled while it runs and read when it ends.</summary>
    string? LimitExceeded(RunnerRef runner) => null;

    /// <summary>Whether any process of the runner is still alive.</summary>
    bool IsAlive(RunnerRef runner);

    /// <summary>Removes leftovers (workspaces of runners from a previous process) not in <paramref name="keep"/>.</summary>
    Task RemoveLeftoversAsync(IReadOnlySet<Guid> keep, CancellationToken ct);
}

/// <summary>The runner could not be created; <see cref="Exception.Message"/> is shown to the user as the reason.</summary>
public sealed class RunnerStartException(string message, Exception? inner = null) : Exception(message, inner);
