using System.Collections.Concurrent;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Messaging;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Reaper;
using EphemeralCI.Provisioner.Scheduling;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Provisioner.Watchers;

/// <summary>
/// Watches every running runner for its two ways to end on its own: the agent exits, or the job's
/// deadline (start + timeout) passes, which kills it and reports TimedOut. Whoever finishes a
/// runner first — exit, deadline, cancel, shutdown — records the outcome; the others find it done.
/// </summary>
public sealed class RunnerSupervisor(
    IServiceScopeFactory scopes,
    JobLocks locks,
    RunnerBackends backends,
    RunnerReaper reaper,
    OutboxSignal signal,
    TimeProvider clock,
    ILogger<RunnerSupervisor> logger) : IHostedService
{
    private readonly ConcurrentDictionary<Guid, Watched> _watched = new();

    public int Count => _watched.Count;

    public void Watch(Guid jobId, RunnerHandle handle, DateTimeOffset deadline, int timeoutSeconds)
    {
        var stop = new CancellationTokenSource();
        _watched[jobId] = new Watched(stop, Task.Run(() => WatchAsync(jobId, handle, deadline, timeoutSeconds, stop.Token)));
    }

    private async Task WatchAsync(Guid jobId, RunnerHandle handle, DateTimeOffset deadline, int timeoutSeconds, CancellationToken stop)
    {
        try
        {
            var remaining = deadline - clock.GetUtcNow();
            var expired = Task.Delay(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, clock, stop);
            var first = await Task.WhenAny(handle.Exited, expired);
            if (first == handle.Exited)
            {
                var code = await handle.Exited;
                if (handle.Failure() is { } failure)
                {
                    await FinishAsync(jobId, failure.Outcome, null, failure.Reason, kill: false, CancellationToken.None);
                    return;
                }
                await FinishAsync(jobId, RunnerOutcome.Exited, code, code == 0 ? null : $"runner agent exited with code {code}", kill: false, CancellationToken.None);
            }
            else if (!stop.IsCancellationRequested)
            {
                logger.LogWarning("Job {JobId} passed its deadline of {Timeout} s; killing its runner", jobId, timeoutSeconds);
                await FinishAsync(jobId, RunnerOutcome.TimedOut, null, $"job exceeded its timeout of {timeoutSeconds} s", kill: true, CancellationToken.None);
            }
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Supervising the runner of job {JobId} failed", jobId);
        }
    }

    /// <summary>Records how the runner ended (once), then tears it down.</summary>
    public async Task FinishAsync(Guid jobId, RunnerOutcome outcome, int? exitCode, string? reason, bool kill, CancellationToken ct)
    {
        using (await locks.AcquireAsync(jobId, ct))
        {
            await FinishLockedAsync(jobId, outcome, exitCode, reason, kill, ct);
            await reaper.TeardownLockedAsync(jobId, ct);
        }
    }

    /// <summary>With the job's lock held: kill if asked, record the outcome and queue RunnerFinished. False if it was already finished.</summary>
    public async Task<bool> FinishLockedAsync(Guid jobId, RunnerOutcome outcome, int? exitCode, string? reason, bool kill, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        var runner = await db.Runners.FirstOrDefaultAsync(r => r.JobId == jobId, ct);
        if (runner is null || runner.FinishedAt is not null || runner.State is RunnerState.Tombstone) return false;

        if (_watched.TryRemove(jobId, out var watch)) watch.Stop.Cancel();
        // Kill before recording, so "cancelled" or "timed out" is only said of a runner that is gone.
        if (kill && backends.TryGet(runner.Backend, out var backend))
        {
            await backend.KillAsync(new RunnerRef(jobId, runner.RunnerId, runner.ProcessId), ct);
        }

        var now = clock.GetUtcNow();
        runner.State = RunnerState.Finished;
        runner.FinishedAt = now;
        runner.Outcome = outcome;
        runner.ExitCode = exitCode;
        runner.Reason = reason;
        db.AddToOutbox(new RunnerFinished(jobId, runner.RunnerId, outcome, exitCode, reason, now), clock);
        await db.SaveChangesAsync(CancellationToken.None);
        signal.Notify();
        logger.LogInformation("Runner of job {JobId} finished: {Outcome} (exit {ExitCode}) {Reason}", jobId, outcome, exitCode, reason);
        return true;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>On shutdown no runner is left behind: each is killed and reported lost.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var jobId in _watched.Keys)
        {
            try
            {
                await FinishAsync(jobId, RunnerOutcome.Lost, null, "provisioner stopped; runner lost", kill: true, cancellationToken);
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "Could not stop the runner of job {JobId} at shutdown", jobId);
            }
        }
    }

    private sealed record Watched(CancellationTokenSource Stop, Task Loop);
}
