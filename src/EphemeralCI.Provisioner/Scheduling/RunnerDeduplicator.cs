using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Provisioner.Scheduling;

/// <summary>
/// Never two runners for one job, whatever the bus redelivers: the job's runner row (primary key =
/// job id) is claimed before anything is created. A RunJob that finds a row — a runner, or the
/// tombstone of an early cancel — does nothing. Hands claimed jobs to the limiter, and those it
/// lets through at once to the scheduler.
/// </summary>
public sealed class RunnerDeduplicator(
    ProvisionerDbContext db,
    RunnerScheduler next,
    RunnerLimiter limiter,
    JobLocks locks,
    TimeProvider clock,
    ILogger<RunnerDeduplicator> logger)
{
    public async Task HandleAsync(RunJob job, CancellationToken ct)
    {
        using var _ = await locks.AcquireAsync(job.JobId, ct);
        var existing = await db.Runners.AsNoTracking().FirstOrDefaultAsync(r => r.JobId == job.JobId, ct);
        if (existing is not null)
        {
            logger.LogInformation("Job {JobId} already has a runner ({State}); RunJob ignored", job.JobId, existing.State);
            return;
        }

        var runner = new RunnerRecord
        {
            JobId = job.JobId,
            RunnerId = RunnerRecord.RunnerIdFor(job.JobId),
            State = RunnerState.Provisioning,
            Template = job.RunnerTemplate,
            Repository = job.Repository,
            Ref = job.Ref,
            CommitSha = job.CommitSha,
            TimeoutSeconds = job.TimeoutSeconds,
            CreatedAt = clock.GetUtcNow(),
        };
        bool startNow;
        try
        {
            startNow = await limiter.AdmitAsync(db, runner, ct);
        }
        catch (DbUpdateException)
        {
            // Another provisioner instance won the insert: its runner is the job's one runner.
            if (!await ClaimedElsewhereAsync(job.JobId, ct)) throw;
            logger.LogInformation("Job {JobId} was claimed concurrently; RunJob ignored", job.JobId);
            return;
        }
        if (startNow) await next.ScheduleAsync(runner, job, ct);
    }

    private async Task<bool> ClaimedElsewhereAsync(Guid jobId, CancellationToken ct)
    {
        db.ChangeTracker.Clear();
        return await db.Runners.AsNoTracking().AnyAsync(r => r.JobId == jobId, ct);
    }
}
