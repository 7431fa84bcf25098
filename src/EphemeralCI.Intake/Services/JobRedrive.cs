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
/// cannot leave a job queued or running forever. Likewise a job that is over but whose runner was never
/// reported destroyed gets a CancelJob: a lost cancel would otherwise leave its runner running to the
/// deadline, and a lost RunnerDestroyed would leave the job without its teardown record and attestation
/// (the provisioner destroys a runner still there, announces again the end of one already gone, and leaves a
/// tombstone for a job that never had one). Asked: cancelled jobs whose deadline is still ahead, and any
/// job over within <see cref="RecentlyFinished"/>.
/// Replicas of the intake on one Postgres database do it one at a time, under an advisory lock held
/// for the transaction: a replica that finds it taken leaves the re-drive to the one holding it, and a
/// job whose RunJob or CancelJob still waits in the outbox unsent is not asked about again.
/// </summary>
public sealed class JobRedrive(IServiceScopeFactory scopes, TimeProvider clock, ILogger<JobRedrive> logger) : IHostedService
{
    private static readonly JobStatus[] NotOver = [JobStatus.Queued, JobStatus.Provisioning, JobStatus.Running];
    /// <summary>The advisory lock's key (any constant no other code of this database uses): "eci-redrive" as 8 bytes.</summary>
    public const long LockKey = 0x6563692d72656472;
    /// <summary>How far back a finished job's missing runner.destroyed is asked about: the provisioner's outbox keeps
    /// the first announcement (with its teardown report) this long by default (<c>Messaging:Outbox:Retention</c>).</summary>
    public static readonly TimeSpan RecentlyFinished = TimeSpan.FromDays(1);

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

    /// <summary>Queues RunJob again for every open job and CancelJob for every job over whose runner is not known to be gone; returns how many.</summary>
    internal async Task<int> RedriveAsync(IntakeDbContext db, CancellationToken cancellationToken)
    {
        var jobs = await db.Jobs.AsNoTracking().Where(j => NotOver.Contains(j.Status)).ToListAsync(cancellationToken);
        var now = clock.GetUtcNow();
        // No job runs longer than the absolute maximum timeout, so older cancels need no second look.
        var oldest = now.AddSeconds(-JobSpecValidator.AbsoluteMaxTimeoutSeconds);
        var recent = now - RecentlyFinished;
        var unconfirmed = (await db.Jobs.AsNoTracking()
                .Where(j => (j.Status == JobStatus.Cancelled && j.CreatedAt >= oldest) || (!NotOver.Contains(j.Status) && j.FinishedAt >= recent))
                .Where(j => j.DestroyedAttempt != j.Attempt)
                .Select(j => new { j.Id, j.CreatedAt, j.TimeoutSeconds, j.FinishedAt })
                .ToListAsync(cancellationToken))
            .Where(j => j.FinishedAt >= recent || j.CreatedAt.AddSeconds(j.TimeoutSeconds) > now)
            .ToList();
        // Asked about already and not yet sent (by another replica just now, or before a restart): once is enough.
        var pending = (await db.OutboxMessages.AsNoTracking().Where(m => m.SentAt == null).Select(m => m.Body).ToListAsync(cancellationToken))
            .ToList();
        jobs = jobs.Where(j => !pending.Any(b => b.Contains(j.Id.ToString(), StringComparison.Ordinal))).ToList();
        unconfirmed = unconfirmed.Where(j => !pending.Any(b => b.Contains(j.Id.ToString(), StringComparison.Ordinal))).ToList();
        if (jobs.Count == 0 && unconfirmed.Count == 0) return 0;
        foreach (var job in jobs)
        {
            db.AddToOutbox(job.RunJobMessage(job.CreatedAt), clock);
        }
        foreach (var job in unconfirmed) db.AddToOutbox(new CancelJob(job.Id, now), clock);
        await db.SaveChangesAsync(cancellationToken);
        logger.LogInformation("Asked the provisioner again at start-up about {Count} job(s) not over and {Unconfirmed} over whose runner was not reported gone",
            jobs.Count, unconfirmed.Count);
        return jobs.Count + unconfirmed.Count;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
