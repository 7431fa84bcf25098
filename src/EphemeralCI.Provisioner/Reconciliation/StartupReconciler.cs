using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Reaper;
using EphemeralCI.Provisioner.Watchers;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Provisioner.Reconciliation;

/// <summary>
/// After a restart nothing of the previous process survives (die-with-parent took its sandboxes),
/// so every runner the database still thinks is alive is reported Lost and torn down, and any
/// workspace left on disk is removed. No ghost runners, no job stuck "running".
/// </summary>
public sealed class StartupReconciler(
    IServiceScopeFactory scopes,
    RunnerBackends backends,
    RunnerSupervisor supervisor,
    RunnerReaper reaper,
    ILogger<StartupReconciler> logger) : IHostedService
{
    public const string LostReason = "provisioner restarted; runner lost";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var backend in backends.All)
        {
            if (backend.MissingPrerequisite() is { } missing) logger.LogError("Runners of backend {Backend} cannot start: {Problem}", backend.Name, missing);
        }
        await ReconcileAsync(cancellationToken);
    }

    public async Task ReconcileAsync(CancellationToken ct)
    {
        List<RunnerRecord> open;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
            open = await db.Runners.AsNoTracking()
                .Where(r => r.State != RunnerState.Tombstone && r.State != RunnerState.Destroyed)
                .ToListAsync(ct);
        }

        foreach (var runner in open)
        {
            try
            {
                if (runner.FinishedAt is null)
                {
                    logger.LogWarning("Runner of job {JobId} was {State} when the provisioner stopped; reporting it lost", runner.JobId, runner.State);
                    // kill: a runner that is somehow still alive is unsupervised now; it must go too.
                    await supervisor.FinishAsync(runner.JobId, RunnerOutcome.Lost, null, LostReason, kill: true, ct);
                }
                else
                {
                    await reaper.TeardownAsync(runner.JobId, ct);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogError(ex, "Could not reconcile the runner of job {JobId}", runner.JobId);
            }
        }

        foreach (var backend in backends.All)
        {
            await backend.RemoveLeftoversAsync(new HashSet<Guid>(), ct);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
