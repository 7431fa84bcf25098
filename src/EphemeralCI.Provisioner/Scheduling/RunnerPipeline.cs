using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Infrastructure;

namespace EphemeralCI.Provisioner.Scheduling;

/*
 * The RunJob pipeline, one interface per boundary (as buildkite/agent-stack-k8s wraps each stage
 * around the next handler), so each stage is tested with a fake next one:
 *
 *   RunnerDeduplicator ──IRunnerAdmission──> RunnerLimiter ──IRunnerStarter──> RunnerScheduler ──IRunnerBackend──> backend
 *   (one runner per job)                     (limits; else Waiting,            (template, token,
 *                                             started later by the pump)         warm or cold start)
 */

/// <summary>
/// What travels down the pipeline: the job as the bus delivered it and its one runner row, tracked by
/// the scope's <see cref="ProvisionerDbContext"/>. <paramref name="Resumed"/>: the row already holds
/// its slot (a start cut short, started again); otherwise it is new and not yet written.
/// </summary>
public sealed record RunnerRequest(RunJob Job, RunnerRecord Runner, bool Resumed = false);

/// <summary>Deduplicator → limiter: writes the claim, and starts it now or makes it wait for a slot.</summary>
public interface IRunnerAdmission
{
    Task AdmitAsync(RunnerRequest request, CancellationToken ct);
}

/// <summary>Limiter (or its pump) → scheduler: turns an admitted runner into a running one. With the job's lock held.</summary>
public interface IRunnerStarter
{
    Task StartAsync(RunnerRequest request, CancellationToken ct);
}
