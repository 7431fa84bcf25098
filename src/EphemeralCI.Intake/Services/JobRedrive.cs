using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Infrastructure;
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
/// cannot leave a job queued or running forever.
/// </summary>
public sealed class JobRedrive(IServiceScopeFactory scopes, OutboxSignal outbox, TimeProvider clock, ILogger<JobRedrive> logger) : IHostedService
{
    private static readonly JobStatus[] NotOver = [JobStatus.Queued, JobStatus.Provisioning, JobStatus.Running];

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<IntakeDbContext>();
        var jobs = await db.Jobs.AsNoTracking().Where(j => NotOver.Contains(j.Status)).ToListAsync(cancellationToken);
        if (jobs.Count == 0) return;
        foreach (var job in jobs)
        {
            db.AddToOutbox(new RunJob(job.Id, job.RunnerTemplate, job.Repository, job.Ref, job.TimeoutSeconds, job.CreatedAt, job.CommitSha), clock);
        }
        await db.SaveChangesAsync(cancellationToken);
        outbox.Notify();
        logger.LogInformation("Asked the provisioner again about {Count} job(s) not over at start-up", jobs.Count);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
