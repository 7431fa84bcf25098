using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Ownership;
using EphemeralCI.Provisioner.Reaper;
using EphemeralCI.Provisioner.Scheduling;
using EphemeralCI.Provisioner.Watchers;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;

namespace EphemeralCI.Provisioner.Consumers;

/// <summary>
/// Carries out cancels that another instance's <see cref="CancelJobConsumer"/> wrote on this instance's
/// runners (every instance consumes the one cancel-job queue, but only the owner can kill a runner).
/// Looks once a second: one indexed query while nothing is asked.
/// </summary>
public sealed class CancelRequests(
    IServiceScopeFactory scopes,
    ProvisionerInstance instance,
    JobLocks locks,
    RunnerSupervisor supervisor,
    RunnerReaper reaper,
    TimeProvider clock,
    ILogger<CancelRequests> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var quiet = SuppressInstrumentationScope.Begin();
        using var timer = new PeriodicTimer(Interval, clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await CarryOutAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    logger.LogError(ex, "Carrying out cancel requests failed; retrying");
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One pass (also called by tests).</summary>
    public async Task<int> CarryOutAsync(CancellationToken ct)
    {
        List<Guid> asked;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
            asked = await db.Runners.AsNoTracking()
                .Where(r => r.CancelRequestedAt != null && r.FinishedAt == null && r.Instance == instance.Name)
                .Select(r => r.JobId).ToListAsync(ct);
        }
        foreach (var jobId in asked)
        {
            using var _ = await locks.AcquireAsync(jobId, ct);
            await supervisor.FinishLockedAsync(jobId, RunnerOutcome.Cancelled, null, CancelJobConsumer.CancelledReason, kill: true, ct);
            await reaper.TeardownLockedAsync(jobId, ct);
        }
        return asked.Count;
    }
}
