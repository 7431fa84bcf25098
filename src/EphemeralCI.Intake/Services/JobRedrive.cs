using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Validation;
using EphemeralCI.Messaging;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Intake.Services;

/// <summary>
/// At start-up, asks the provisioner again about every job that is not over yet: each gets its
/// RunJob once more (through the outbox). The provisioner runs a job it never heard of, ignores one
/// whose runner is alive, and announces again how a finished runner ended. So a message lost in
/// flight — the embedded server's in-memory transport loses what is queued when the process dies —
/// cannot leave a job queued or running forever. Likewise a cancelled job whose runner was never
/// reported destroyed, and whose deadline is still ahead, gets its CancelJob once more: a lost cancel
/// would otherwise leave its runner running to the deadline (the provisioner ignores a second cancel).
/// Replicas of the intake on one Postgres database do it one at a time, under an advisory lock held
/// for the transaction: a replica that finds it taken leaves the re-drive to the one holding it, and a
/// job whose RunJob or CancelJob still waits in the outbox unsent is not asked about again.
/// </summary>
public sealed class JobRedrive(IServiceScopeFactory scopes, TimeProvider clock, ILogger<JobRedrive> logger) : IHostedService
{
    private static readonly JobStatus[] NotOver = [JobStatus.Queued, JobStatus.Provisioning, JobStatus.Running];
    /// <summary>The advisory lock's key (any constant no other code of this database uses): "eci-redrive" as 8 bytes.</summary>
    public const long LockKey = 0x6563692d72656472;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<IntakeDbContext>();
        if (db.Database.IsSqlite())
        {
            // One process owns an SQLite database (the all-in-one server): nobody to share with.
            await RedriveAsync(db, cancellationToken);
            return;
        }
        await db.Database.CreateExecutionStrategy().ExecuteAsync(async () =>
        {
            db.ChangeTracker.Clear();
            await using var tx = await db.Database.BeginTransactionAsync(cancellationToken);
            var mine = await db.Database.SqlQuery<bool>($"SELECT pg_try_advisory_xact_lock({LockKey}) AS \"Value\"").SingleAsync(cancellationToken);
            if (!mine)
            {
                logger.LogInformation("Another intake replica is re-driving open jobs; leaving it to that one");
                return;
            }
            await RedriveAsync(db, cancellationToken);
            await tx.CommitAsync(cancellationToken);
        });
    }

    /// <summary>Queues RunJob again for every open job and CancelJob for every cancel not known to be done; returns how many.</summary>
    internal async Task<int> RedriveAsync(IntakeDbContext db, CancellationToken cancellationToken)
    {
        var jobs = await db.Jobs.AsNoTracking().Where(j => NotOver.Contains(j.Status)).ToListAsync(cancellationToken);
        var now = clock.GetUtcNow();
        // No job runs longer than the absolute maximum timeout, so older cancels need no second look.
        var oldest = now.AddSeconds(-JobSpecValidator.AbsoluteMaxTimeoutSeconds);
        var cancelled = (await db.Jobs.AsNoTracking()
                .Where(j => j.Status == JobStatus.Cancelled && j.CreatedAt >= oldest
                    && !db.JobEvents.Any(e => e.JobId == j.Id && e.Type == JobEventTypes.RunnerDestroyed))
                .Select(j => new { j.Id, j.CreatedAt, j.TimeoutSeconds })
                .ToListAsync(cancellationToken))
            .Where(j => j.CreatedAt.AddSeconds(j.TimeoutSeconds) > now)
            .ToList();
        // Asked about already and not yet sent (by another replica just now, or before a restart): once is enough.
        var pending = (await db.OutboxMessages.AsNoTracking().Where(m => m.SentAt == null).Select(m => m.Body).ToListAsync(cancellationToken))
            .ToList();
        jobs = jobs.Where(j => !pending.Any(b => b.Contains(j.Id.ToString(), StringComparison.Ordinal))).ToList();
        cancelled = cancelled.Where(j => !pending.Any(b => b.Contains(j.Id.ToString(), StringComparison.Ordinal))).ToList();
        if (jobs.Count == 0 && cancelled.Count == 0) return 0;
        foreach (var job in jobs)
        {
            db.AddToOutbox(new RunJob(job.Id, job.RunnerTemplate, job.Repository, job.Ref, job.TimeoutSeconds, job.CreatedAt, job.CommitSha), clock);
        }
        foreach (var job in cancelled) db.AddToOutbox(new CancelJob(job.Id, now), clock);
        await db.SaveChangesAsync(cancellationToken);
        logger.LogInformation("Asked the provisioner again about {Count} job(s) not over and {Cancelled} cancelled job(s) whose runner was not reported gone at start-up",
            jobs.Count, cancelled.Count);
        return jobs.Count + cancelled.Count;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
