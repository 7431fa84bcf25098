using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Ownership;
using EphemeralCI.Provisioner.Reaper;
using EphemeralCI.Provisioner.Scheduling;
using EphemeralCI.Provisioner.Watchers;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Provisioner.Consumers;

/// <summary>
/// CancelJob: a running runner is killed, reported Cancelled and torn down. A job with no runner
/// yet (cancel overtook RunJob, or the job is unknown) gets a tombstone row, so a RunJob that
/// arrives later finds the job taken and never starts a runner. A runner of another provisioner
/// instance is cancelled by that instance: the request is written on its row (<see cref="CancelRequests"/>).
/// A runner already gone has its end announced again: the intake sends CancelJob at start-up for every
/// recently finished job it never heard was torn down (<see cref="RunnerEndAnnouncement"/>).
/// </summary>
public sealed class CancelJobConsumer(
    ProvisionerDbContext db,
    JobLocks locks,
    RunnerSupervisor supervisor,
    RunnerReaper reaper,
    ProvisionerInstance instance,
    TimeProvider clock,
    ILogger<CancelJobConsumer> logger) : IConsumer<CancelJob>
{
    public const string CancelledReason = "cancelled";

    public async Task Consume(ConsumeContext<CancelJob> context)
    {
        var jobId = context.Message.JobId;
        var ct = context.CancellationToken;
        using var _ = await locks.AcquireAsync(jobId, ct);

        var runner = await db.Runners.AsNoTracking().FirstOrDefaultAsync(r => r.JobId == jobId, ct);
        if (runner is null)
        {
            var now = clock.GetUtcNow();
            db.Runners.Add(new RunnerRecord
            {
                JobId = jobId,
                RunnerId = RunnerRecord.RunnerIdFor(jobId),
                State = RunnerState.Tombstone,
                CreatedAt = now,
                FinishedAt = now,
                Outcome = Contracts.Messages.RunnerOutcome.Cancelled,
                Reason = "cancelled before a runner was created",
            });
            // A conflict means RunJob claimed the job between our read and write; the redelivered
            // CancelJob will find that runner and cancel it.
            await db.SaveChangesAsync(ct);
            logger.LogInformation("Job {JobId} cancelled before provisioning; tombstone recorded", jobId);
            return;
        }
        if (runner.FinishedAt is null && !instance.Owns(runner))
        {
            // Only the owner can kill it (a local sandbox lives on its machine); if the owner is dead, its adopter sees this.
            await db.Runners.Where(r => r.JobId == jobId && r.CancelRequestedAt == null)
                .ExecuteUpdateAsync(u => u.SetProperty(r => r.CancelRequestedAt, clock.GetUtcNow()), ct);
            logger.LogInformation("Cancel of job {JobId} passed on to provisioner instance {Instance}, which owns its runner", jobId, runner.Instance);
            return;
        }
        if (runner.DestroyedAt is not null)
        {
            // The intake asks about a job whose runner it never heard was gone (after its restart): say so again.
            logger.LogInformation("Cancel of job {JobId} ignored: its runner is already gone; its end is announced again", jobId);
            if (await db.AnnounceEndAgainAsync(runner, clock, ct)) await db.SaveChangesAsync(ct);
            return;
        }
        if (runner.FinishedAt is not null)
        {
            logger.LogInformation("Cancel of job {JobId} ignored: its runner already finished ({Outcome})", jobId, runner.Outcome);
            await reaper.TeardownLockedAsync(jobId, ct);
            return;
        }

        await supervisor.FinishLockedAsync(jobId, RunnerOutcome.Cancelled, null, CancelledReason, kill: true, ct);
        await reaper.TeardownLockedAsync(jobId, ct);
    }
}
