using EphemeralCI.Contracts.Messages;
using EphemeralCI.Messaging;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Scheduling;
using EphemeralCI.Provisioner.Teardown;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Provisioner.Reaper;

/// <summary>
/// Tears a finished runner down: kills whatever of it is left, deletes its workspace and control
/// socket, has an independent check confirm nothing is left (<see cref="RunnerTeardown"/>), marks the
/// row destroyed and queues RunnerDestroyed with that check's report — in that order, so "destroyed"
/// is only ever said of a runner that was torn down, and whether it was verified gone travels with it. Idempotent.
/// </summary>
public sealed class RunnerReaper(
    IServiceScopeFactory scopes,
    JobLocks locks,
    RunnerBackends backends,
    RunnerTeardown teardown,
    TimeProvider clock,
    ILogger<RunnerReaper> logger)
{
    public async Task TeardownAsync(Guid jobId, CancellationToken ct = default)
    {
        using (await locks.AcquireAsync(jobId, ct))
        {
            await TeardownLockedAsync(jobId, ct);
        }
    }

    /// <summary>
    /// With the job's lock held, for a finished runner on another machine that stopped answering (its
    /// provisioner instance died, and with it, as a rule, its sandboxes): nothing of it can be killed or
    /// checked from here, so it is said destroyed with a teardown check that failed and says why — the
    /// job's attestation then vouches for nothing it cannot see. What is left there is removed by the next
    /// process of that instance on its machine.
    /// </summary>
    public async Task AbandonLockedAsync(Guid jobId, string target, string why, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        var runner = await db.Runners.FirstOrDefaultAsync(r => r.JobId == jobId, ct);
        if (runner is null || runner.DestroyedAt is not null || runner.FinishedAt is null) return;
        var now = clock.GetUtcNow();
        var report = new TeardownReport(false, 0, [new TeardownCheck("machine", false, target, why)], [why]);
        if (runner.State == RunnerState.Finished) runner.MoveTo(RunnerState.Released);
        runner.Destroy(now);
        db.AddToOutbox(new RunnerDestroyed(jobId, runner.RunnerId, now, report, runner.Backend, runner.TemplateHash, runner.Attempt), clock, RunnerMessageIds.Destroyed(runner.RunnerId));
        await db.SaveChangesAsync(CancellationToken.None);
        logger.LogWarning("Runner {RunnerId} of job {JobId} abandoned unchecked: {Why}", runner.RunnerId, jobId, why);
    }

    /// <summary>With the job's lock held.</summary>
    public async Task TeardownLockedAsync(Guid jobId, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        var runner = await db.Runners.FirstOrDefaultAsync(r => r.JobId == jobId, ct);
        if (runner is null || runner.DestroyedAt is not null || runner.State is RunnerState.Tombstone) return;
        if (runner.FinishedAt is null)
        {
            logger.LogWarning("Teardown of job {JobId} skipped: its runner has not finished", jobId);
            return;
        }

        TeardownReport? report = null;
        if (backends.TryGet(runner.Backend, out var backend))
        {
            report = await teardown.DestroyAsync(backend, new RunnerRef(jobId, runner.RunnerId, runner.ProcessId, runner.CreatedAt), ReleaseAsync, ct);
        }
        else
        {
            await ReleaseAsync(ct);
        }

        var now = clock.GetUtcNow();
        runner.Destroy(now);
        db.AddToOutbox(new RunnerDestroyed(jobId, runner.RunnerId, now, report, runner.Backend, runner.TemplateHash, runner.Attempt), clock, RunnerMessageIds.Destroyed(runner.RunnerId));
        await db.SaveChangesAsync(CancellationToken.None);
        logger.LogInformation("Runner {RunnerId} of job {JobId} destroyed", runner.RunnerId, jobId);

        // Cleanup is done: the runner's slot is free (Released; the limiter hears of it from the save) while the independent check still looks (the check
        // under load costs tens of ms, and holding every slot through it cost a burst 12 % of its jobs/s).
        async Task ReleaseAsync(CancellationToken token)
        {
            if (runner.State != RunnerState.Released)
            {
                runner.MoveTo(RunnerState.Released);
                await db.SaveChangesAsync(CancellationToken.None);
            }
        }
    }
}
