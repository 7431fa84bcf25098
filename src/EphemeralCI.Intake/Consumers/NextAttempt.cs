using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Services;

namespace EphemeralCI.Intake.Consumers;

/// <summary>
/// Retry after a lost runner (<c>retry.infrastructure</c>): once the lost runner is both reported finished
/// and destroyed — two messages on separate queues, in either order; whichever comes second sees both —
/// the job is queued again as its next attempt and a new RunJob goes out in the same transaction.
/// </summary>
internal static class NextAttempt
{
    public static void StartIfDue(JobChange change, long logEnd)
    {
        var job = change.Job;
        if (!job.NextAttemptDue) return;
        job.StartNextAttempt(logEnd);
        change.AddEvent(JobEventTypes.Queued, $"attempt {job.Attempt} of {job.InfrastructureRetries() + 1} queued: a new runner, steps from the first",
            new { job.Attempt });
        change.Publish(job.RunJobMessage(change.Now));
    }
}
