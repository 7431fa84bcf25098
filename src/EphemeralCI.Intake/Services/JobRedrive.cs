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
/// </summary>
public sealed class JobRedrive(IServiceScopeFactory scopes, OutboxSignal outbox, TimeProvider clock, ILogger<JobRedrive> logger) : IHostedService
{
    private static readonly JobStatus[] NotOver = [JobStatus.Queued, JobStatus.Provisioning, JobStatus.Running];

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<IntakeDbContext>();
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
        if (jobs.Count == 0 && cancelled.Count == 0) return;
        foreach (var job in jobs)
        {
            db.AddToOutbox(new RunJob(job.Id, job.RunnerTemplate, job.Repository, job.Ref, job.TimeoutSeconds, job.CreatedAt, job.CommitSha), clock);
        }
        foreach (var job in cancelled) db.AddToOutbox(new CancelJob(job.Id, now), clock);
        await db.SaveChangesAsync(cancellationToken);
        outbox.Notify();
        logger.LogInformation("Asked the provisioner again about {Count} job(s) not over and {Cancelled} cancelled job(s) whose runner was not reported gone at start-up",
            jobs.Count, cancelled.Count);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
