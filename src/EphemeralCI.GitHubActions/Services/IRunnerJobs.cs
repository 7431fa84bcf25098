using EphemeralCI.Contracts.Jobs;

namespace EphemeralCI.GitHubActions.Services;

/// <summary>
/// The EphemeralCI jobs that run the runners. In the all-in-one server: the intake's submission service in the same
/// process, the identity vouched for by the HMAC-verified webhook. As a service: the intake's API with this
/// service's own API key, bound to the configured repositories and runner templates.
/// </summary>
public interface IRunnerJobs
{
    /// <summary>Submits (idempotent by <paramref name="idempotencyKey"/>) and answers the job's id.</summary>
    Task<Guid> SubmitAsync(JobSpec spec, string idempotencyKey, CancellationToken ct);

    /// <summary>The job's status, or null when the intake does not know it.</summary>
    Task<JobStatus?> StatusAsync(Guid jobId, CancellationToken ct);

    /// <summary>Cancels the job if it has not finished.</summary>
    Task CancelAsync(Guid jobId, string reason, CancellationToken ct);
}

/// <summary>The intake refused the job (bad template, identity outside the key's bindings): not retried.</summary>
public sealed class RunnerJobRefusedException(string detail) : Exception(detail);
