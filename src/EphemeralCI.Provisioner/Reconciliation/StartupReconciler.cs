using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Consumers;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Ownership;
using EphemeralCI.Provisioner.Reaper;
using EphemeralCI.Provisioner.Scheduling;
using EphemeralCI.Provisioner.Watchers;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry;

namespace EphemeralCI.Provisioner.Reconciliation;

/// <summary>Configuration section <c>Provisioner:Reconciler</c>.</summary>
public sealed class ReconcilerOptions
{
    public const string Section = "Provisioner:Reconciler";
    /// <summary>Seconds between periodic passes (0 = only at start-up).</summary>
    public int IntervalSeconds { get; set; } = 30;
    /// <summary>
    /// A runner seen "provisioning" by passes this far apart, with nobody starting or supervising it, is
    /// a start cut short whose RunJob will not come again (its retries ended in the error queue): it goes
    /// back to the wait queue and starts. Mostly the redelivered RunJob gets there first.
    /// </summary>
    public int RequeueProvisioningAfterSeconds { get; set; } = 10;
    /// <summary>A supervised runner without a live process for this long, whose exit its supervisor has not seen, vanished.</summary>
    public int VanishedAfterSeconds { get; set; } = 15;
}

/// <summary>
/// Makes the database and the machine agree — no ghost runners, no job stuck "running".
/// At start-up nothing of the previous process survives (die-with-parent took its sandboxes), so
/// every runner the database still thinks is running is reported Lost and torn down; a runner that
/// was claimed but never got a process (Provisioning: the provisioner died mid-start or before it)
/// is not lost, it was never started — it goes back to the wait queue and the limiter starts it. Then
/// periodically: a running runner nobody supervises, or whose processes vanished (killed from
/// outside, evicted), is reported Lost; a start cut short is queued again as at start-up; a finished runner not yet destroyed is torn down again; and
/// whatever a backend still has of a job that is over or unknown (workspaces, cgroups) is removed.
/// </summary>
public sealed class StartupReconciler(
    IServiceScopeFactory scopes,
    JobLocks locks,
    RunnerBackends backends,
    RunnerSupervisor supervisor,
    RunnerReaper reaper,
    RunnerSlots slots,
    ProvisionerInstance instance,
    IOptions<InstanceOptions> instanceOptions,
    IOptions<ReconcilerOptions> options,
    TimeProvider clock,
    ILogger<StartupReconciler> logger) : IHostedService, IDisposable
{
    public const string LostReason = "provisioner restarted; runner lost";
    public const string VanishedReason = "the runner vanished: none of its processes is left";
    public const string UnsupervisedReason = "the runner was not supervised by this provisioner";
    public const string InstanceDiedReason = "its provisioner instance stopped heartbeating; runner lost";

    // How long a pass waits for a job someone else is changing before it leaves that job to them.
    private static readonly TimeSpan LockWait = TimeSpan.FromSeconds(1);
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private VanishedRunners? _vanished;
    private VanishedRunners Vanished => _vanished ??= new(TimeSpan.FromSeconds(options.Value.VanishedAfterSeconds));
    // The same bookkeeping for "provisioning, and nobody is starting it": a start in flight is never seen so twice, a grace apart.
    private VanishedRunners? _cutShort;
    private VanishedRunners CutShort => _cutShort ??= new(TimeSpan.FromSeconds(options.Value.RequeueProvisioningAfterSeconds));

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var backend in backends.All)
        {
            if (backend.MissingPrerequisite() is { } missing) logger.LogError("Runners of backend {Backend} cannot start: {Problem}", backend.Name, missing);
        }
        await ReconcileAsync(cancellationToken);
        if (options.Value.IntervalSeconds > 0) _loop = Task.Run(() => LoopAsync(_stop.Token), CancellationToken.None);
    }

    private async Task LoopAsync(CancellationToken stop)
    {
        // A background pass is not a job's work: no root trace of its own (the Aspire dashboard drowned in them).
        using var quiet = SuppressInstrumentationScope.Begin();
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.IntervalSeconds), clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                try
                {
                    await ReconcilePeriodicallyAsync(stop);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    logger.LogError(ex, "Periodic reconciliation failed; retrying at the next tick");
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>The start-up pass: every runner not yet destroyed belonged to a previous process.</summary>
    public async Task ReconcileAsync(CancellationToken ct)
    {
        await AdoptFromDeadInstancesAsync(ct);
        foreach (var runner in await OpenRunnersAsync(ct))
        {
            // A waiting job has no runner yet: it stays in the queue, and the limiter starts it.
            if (runner.State == RunnerState.Waiting) continue;
            await TryAsync(runner.JobId, async () =>
            {
                if (runner is { State: RunnerState.Provisioning, FinishedAt: null })
                {
                    using (await locks.AcquireAsync(runner.JobId, ct)) await RequeueLockedAsync(runner.JobId, ct);
                }
                else if (runner.FinishedAt is null)
                {
                    // One any instance reaches (Kubernetes) ran on while this process was down: watched again, not lost.
                    using (await locks.AcquireAsync(runner.JobId, ct))
                    {
                        if (runner.State == RunnerState.Running && !supervisor.IsWatching(runner.JobId) && await ReattachAsync(runner, ct)) return;
                    }
                    logger.LogWarning("Runner of job {JobId} was {State} when the provisioner stopped; reporting it lost", runner.JobId, runner.State);
                    // kill: a runner that is somehow still alive is unsupervised now; it must go too.
                    await supervisor.FinishAsync(runner.JobId, RunnerOutcome.Lost, null, LostReason, kill: true, ct);
                }
                else
                {
                    await reaper.TeardownAsync(runner.JobId, ct);
                }
            });
        }
        await RemoveLeftoversAsync(ct);
    }

    /// <summary>
    /// One periodic pass (also called by tests). The snapshot only says which runners to look at: each
    /// is decided under its job's lock, on its row as it is then. A runner that started or finished
    /// since the snapshot is thereby never taken for an unsupervised or vanished one (the scheduler
    /// records Running and starts watching under that same lock; the supervisor stops watching and
    /// records Finished under it too).
    /// </summary>
    public async Task ReconcilePeriodicallyAsync(CancellationToken ct)
    {
        await AdoptFromDeadInstancesAsync(ct);
        var looked = new HashSet<Guid>();
        foreach (var candidate in await OpenRunnersAsync(ct))
        {
            if (candidate.State == RunnerState.Waiting) continue;
            looked.Add(candidate.JobId);
            await TryAsync(candidate.JobId, async () =>
            {
                // Held: the job is being started, finished or torn down right now, and that decides it.
                using var held = await locks.TryAcquireAsync(candidate.JobId, LockWait, ct);
                if (held is null) return;
                await DecideLockedAsync(candidate.JobId, ct);
            });
        }
        Vanished.KeepOnly(looked);
        CutShort.KeepOnly(looked);
        await RemoveLeftoversAsync(ct);
    }

    /// <summary>With the job's lock held: acts on the runner's current row.</summary>
    private async Task DecideLockedAsync(Guid jobId, CancellationToken ct)
    {
        RunnerRecord? runner;
        await using (var scope = scopes.CreateAsyncScope())
        {
            runner = await scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>().Runners.AsNoTracking()
                .FirstOrDefaultAsync(r => r.JobId == jobId, ct);
        }
        if (runner is null || runner.State is RunnerState.Tombstone or RunnerState.Waiting or RunnerState.Destroyed) return;
        if (runner.FinishedAt is not null)
        {
            await reaper.TeardownLockedAsync(jobId, ct);
            return;
        }
        if (runner.State == RunnerState.Provisioning)
        {
            // Nobody holds the lock (every start does) and nothing is supervised: a start cut short — once it stays so.
            // (Queued again, it is started by the limiter's pump, which hears of it from the save.)
            if (CutShort.Observe(jobId, alive: supervisor.IsWatching(jobId), clock.GetUtcNow())) await RequeueLockedAsync(jobId, ct);
            return;
        }
        if (runner.State != RunnerState.Running) return;
        if (!supervisor.IsWatching(jobId))
        {
            // Started before this process restarted: one any instance reaches (Kubernetes) ran on and is watched again.
            if (await ReattachAsync(runner, ct)) return;
            logger.LogWarning("Runner of job {JobId} is running unsupervised; stopping it", jobId);
            await EndLockedAsync(jobId, RunnerOutcome.Lost, UnsupervisedReason, ct);
            return;
        }
        // Its end is seen and waits for this lock to be recorded: ended, not vanished.
        if (supervisor.HasSeenExit(jobId)) return;
        if (!backends.TryGet(runner.Backend, out var backend)) return;
        var alive = backend.IsAlive(new RunnerRef(jobId, runner.RunnerId, runner.ProcessId));
        if (Vanished.Observe(jobId, alive, clock.GetUtcNow()))
        {
            logger.LogWarning("Runner of job {JobId} vanished; reporting it lost", jobId);
            await EndLockedAsync(jobId, RunnerOutcome.Lost, VanishedReason, ct);
        }
    }

    /// <summary>
    /// With the job's lock held: a runner claimed but never started goes back to the wait queue, in its
    /// place (the queue is ordered by when the job was claimed), after whatever its cut-short start left
    /// on this machine is removed. Not Lost: no job step ran under it that anyone was told of.
    /// </summary>
    private async Task RequeueLockedAsync(Guid jobId, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        var runner = await db.Runners.FirstOrDefaultAsync(r => r.JobId == jobId, ct);
        if (runner is not { State: RunnerState.Provisioning, FinishedAt: null } || supervisor.IsWatching(jobId)) return;
        if (backends.TryGet(runner.Backend, out var backend))
        {
            var leftover = new RunnerRef(jobId, runner.RunnerId, runner.ProcessId);
            await backend.KillAsync(leftover, ct);
            await backend.DestroyAsync(leftover, ct);
        }
        runner.MoveTo(RunnerState.Waiting);
        await db.SaveChangesAsync(ct);
        logger.LogWarning("Runner of job {JobId} was claimed but never started; queued to start again", jobId);
    }

    private async Task EndLockedAsync(Guid jobId, RunnerOutcome outcome, string reason, CancellationToken ct)
    {
        // kill: a runner declared over must be gone before that is said.
        await supervisor.FinishLockedAsync(jobId, outcome, null, reason, kill: true, ct);
        await reaper.TeardownLockedAsync(jobId, ct);
    }

    /// <summary>This instance's runners not yet destroyed (another live instance's are its own business).</summary>
    private async Task<List<RunnerRecord>> OpenRunnersAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        return await db.Runners.AsNoTracking()
            .Where(r => r.State != RunnerState.Tombstone && r.State != RunnerState.Destroyed && (r.Instance == null || r.Instance == instance.Name))
            .ToListAsync(ct);
    }

    /// <summary>
    /// The runners of instances whose lease ran out become this instance's, each claimed by one
    /// conditional update (two live instances never both adopt one), then handled as a start-up handles
    /// its own: a job with no runner yet (waiting, or a start cut short) is started here — never failed;
    /// a running Kubernetes runner runs on and is watched from here (a graceful stop released the lease
    /// for exactly this: a rolling upgrade fails no job); a running local sandbox is lost (its machine is
    /// out of reach, so it is abandoned with a failed check that says so). A cancel that reached the dead
    /// instance's runner makes it Cancelled rather than Lost (killed first).
    /// </summary>
    private async Task AdoptFromDeadInstancesAsync(CancellationToken ct)
    {
        List<(Guid JobId, string From)> orphans;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
            var dead = await InstanceLease.DeadInstancesAsync(db, instance, instanceOptions.Value.LeaseDuration, clock.GetUtcNow(), ct);
            if (dead.Count == 0) return;
            orphans = [.. (await db.Runners.AsNoTracking()
                .Where(r => r.Instance != null && dead.Contains(r.Instance) && r.State != RunnerState.Tombstone && r.State != RunnerState.Destroyed)
                .Select(r => new { r.JobId, r.Instance })
                .ToListAsync(ct)).Select(r => (r.JobId, r.Instance!))];
            if (orphans.Count == 0)
            {
                // Nothing of theirs is left: forget them (a later process of the same name registers again).
                var cutoff = clock.GetUtcNow() - instanceOptions.Value.LeaseDuration;
                foreach (var name in dead)
                {
                    var row = await db.Instances.FirstOrDefaultAsync(i => i.Name == name, ct);
                    if (row is not null && row.HeartbeatAt <= cutoff) db.Instances.Remove(row);
                }
                await db.SaveChangesAsync(ct);
                return;
            }
        }
        foreach (var (jobId, from) in orphans)
        {
            await TryAsync(jobId, async () =>
            {
                using (await locks.AcquireAsync(jobId, ct)) await AdoptLockedAsync(jobId, from, ct);
            });
        }
        // Rows already Waiting were adopted by an update the save interceptor does not see: tell the pump.
        slots.Changed();
    }

    private async Task AdoptLockedAsync(Guid jobId, string from, CancellationToken ct)
    {
        RunnerRecord? runner;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
            var claimed = await db.Runners.Where(r => r.JobId == jobId && r.Instance == from)
                .ExecuteUpdateAsync(s => s.SetProperty(r => r.Instance, instance.Name), ct);
            if (claimed == 0) return; // another live instance adopted it first
            runner = await db.Runners.FirstAsync(r => r.JobId == jobId, ct);
            logger.LogWarning("Runner of job {JobId} ({State}) adopted from provisioner instance {From}, which stopped heartbeating", jobId, runner.State, from);
            if (runner is { State: RunnerState.Provisioning, FinishedAt: null })
            {
                // Its start was cut short by the death: start it here. What a reachable backend made goes first.
                if (backends.TryGet(runner.Backend, out var reachable) && !reachable.RunnersAreMachineBound)
                {
                    var leftover = new RunnerRef(jobId, runner.RunnerId, runner.ProcessId);
                    await reachable.KillAsync(leftover, ct);
                    await reachable.DestroyAsync(leftover, ct);
                }
                runner.MoveTo(RunnerState.Waiting);
                await db.SaveChangesAsync(ct);
                return;
            }
            if (runner.State == RunnerState.Waiting) return; // the pump starts it
        }
        // A runner any instance reaches (Kubernetes) runs on in the cluster: watched from here now, not lost.
        if (runner is { State: RunnerState.Running, FinishedAt: null, CancelRequestedAt: null } && await ReattachAsync(runner, ct)) return;
        var machineBound = !backends.TryGet(runner.Backend, out var backend) || backend.RunnersAreMachineBound;
        if (runner.FinishedAt is null)
        {
            var (outcome, reason) = runner.CancelRequestedAt is not null
                ? (RunnerOutcome.Cancelled, CancelJobConsumer.CancelledReason)
                : (RunnerOutcome.Lost, InstanceDiedReason);
            await supervisor.FinishLockedAsync(jobId, outcome, null, reason, kill: !machineBound, ct);
        }
        if (machineBound)
        {
            await reaper.AbandonLockedAsync(jobId, $"provisioner instance '{from}'",
                $"not checked: the runner ran on the machine of provisioner instance '{from}', which stopped heartbeating; its next start on that machine removes what is left", ct);
        }
        else
        {
            await reaper.TeardownLockedAsync(jobId, ct);
        }
    }

    /// <summary>With the job's lock held: supervises a running runner this process did not start, if its backend reaches it from here.</summary>
    private async Task<bool> ReattachAsync(RunnerRecord runner, CancellationToken ct)
    {
        if (!backends.TryGet(runner.Backend, out var backend) || backend.RunnersAreMachineBound || runner.Deadline is not { } deadline) return false;
        if (await backend.ReattachAsync(new RunnerRef(runner.JobId, runner.RunnerId, runner.ProcessId), ct) is not { } handle) return false;
        supervisor.Watch(runner.JobId, handle, backend, deadline, runner.TimeoutSeconds);
        logger.LogInformation("Runner of job {JobId} is supervised by this instance now", runner.JobId);
        return true;
    }

    /// <summary>Every instance's open runners, with the instance that owns each.</summary>
    private async Task<List<(Guid JobId, string? Instance)>> AllOpenRunnersAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        return [.. (await db.Runners.AsNoTracking()
            .Where(r => r.State != RunnerState.Tombstone && r.State != RunnerState.Destroyed)
            .Select(r => new { r.JobId, r.Instance }).ToListAsync(ct)).Select(r => (r.JobId, r.Instance))];
    }

    /// <summary>
    /// Whatever a backend has of a job that is over or unknown goes; runners not yet destroyed are kept (their teardown owns them).
    /// A shared backend (a cluster) keeps every instance's open runners; a machine-bound one holds only this
    /// instance's, so a job another instance adopted leaves nothing here once it is not ours.
    /// </summary>
    private async Task RemoveLeftoversAsync(CancellationToken ct)
    {
        var open = await AllOpenRunnersAsync(ct);
        var everyInstance = open.Select(r => r.JobId).ToHashSet();
        var ours = open.Where(r => r.Instance is null || r.Instance == instance.Name).Select(r => r.JobId).ToHashSet();
        foreach (var backend in backends.All)
        {
            try
            {
                await backend.RemoveLeftoversAsync(backend.RunnersAreMachineBound ? ours : everyInstance, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogError(ex, "Could not remove leftovers of backend {Backend}", backend.Name);
            }
        }
    }

    private async Task TryAsync(Guid jobId, Func<Task> action)
    {
        try
        {
            await action();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogError(ex, "Could not reconcile the runner of job {JobId}", jobId);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        if (_loop is not null) await _loop.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    public void Dispose() => _stop.Dispose();
}
