using EphemeralCI.Contracts.Messages;
using EphemeralCI.Messaging;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Ownership;
using EphemeralCI.Provisioner.Watchers;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Provisioner.Scheduling;

/// <summary>
/// Never two runners for one job, whatever the bus redelivers: the job's runner row (primary key =
/// job id) is claimed before anything is created. A RunJob that finds a row — a runner, or the
/// tombstone of an early cancel — creates nothing; if that runner is over, its end is announced
/// again (<see cref="RunnerEndAnnouncement"/>: the intake asks at start-up about jobs it still thinks are running). A row still Provisioning that nobody here is starting or supervising is a
/// start cut short (the broker or the database went away mid-start, the consumer was cancelled): the
/// redelivered RunJob starts it again. The pipeline's first stage: a job that needs a runner goes on
/// as a claim (a new row, not yet written) to the admission stage.
/// </summary>
public sealed class RunnerDeduplicator(
    ProvisionerDbContext db,
    IRunnerAdmission next,
    RunnerSupervisor supervisor,
    JobLocks locks,
    ProvisionerInstance instance,
    TimeProvider clock,
    ILogger<RunnerDeduplicator> logger)
{
    public async Task HandleAsync(RunJob job, CancellationToken ct)
    {
        using var _ = await locks.AcquireAsync(job.JobId, ct);
        var existing = await db.Runners.FirstOrDefaultAsync(r => r.JobId == job.JobId, ct);
        if (existing is not null && job.Attempt != existing.Attempt && existing.State != RunnerState.Tombstone)
        {
            if (job.Attempt < existing.Attempt)
            {
                logger.LogInformation("RunJob of attempt {Attempt} for job {JobId} ignored: attempt {Current} is under way", job.Attempt, job.JobId, existing.Attempt);
                return;
            }
            // The intake asks for the next attempt only once the previous runner is reported destroyed.
            if (existing.State != RunnerState.Destroyed)
            {
                logger.LogError("RunJob of attempt {Attempt} for job {JobId} ignored: the runner of attempt {Current} is still {State}",
                    job.Attempt, job.JobId, existing.Attempt, existing.State);
                return;
            }
            // The lost runner is gone (its end announced, its teardown reported): its row makes way for the new attempt's.
            db.Runners.Remove(existing);
            await db.SaveChangesAsync(ct);
            existing = null;
        }
        // We hold the job's lock, which every start holds: Provisioning and unsupervised means no start is under way
        // here. (Another instance's row is its business; if that instance died, a live one adopts the row.)
        if (existing is { State: RunnerState.Provisioning, FinishedAt: null } && instance.Owns(existing) && !supervisor.IsWatching(job.JobId))
        {
            logger.LogWarning("Job {JobId} was claimed but its runner never started (a start cut short); starting it now", job.JobId);
            await next.AdmitAsync(new RunnerRequest(job, existing, Resumed: true), ct);
            return;
        }
        if (existing is not null)
        {
            logger.LogInformation("Job {JobId} already has a runner ({State}); RunJob ignored", job.JobId, existing.State);
            if (await db.AnnounceEndAgainAsync(existing, clock, ct)) await db.SaveChangesAsync(ct);
            return;
        }

        var runner = new RunnerRecord
        {
            JobId = job.JobId,
            RunnerId = RunnerRecord.RunnerIdFor(job.JobId, job.Attempt),
            Attempt = job.Attempt,
            State = RunnerState.Provisioning,
            Instance = instance.Name,
            TraceParent = JobTrace.Current(),
            Template = job.RunnerTemplate,
            Repository = job.Repository,
            Ref = job.Ref,
            CommitSha = job.CommitSha,
            Environment = job.Environment,
            TimeoutSeconds = job.TimeoutSeconds,
            CreatedAt = clock.GetUtcNow(),
        };
        await next.AdmitAsync(new RunnerRequest(job, runner), ct);
    }
}
