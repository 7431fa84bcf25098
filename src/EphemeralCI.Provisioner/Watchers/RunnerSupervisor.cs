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
using Polly;
using Polly.Retry;

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
    TimeProvider clock,
    ILogger<RunnerSupervisor> logger) : IHostedService
{
    private readonly ConcurrentDictionary<Guid, Watched> _watched = new();

    public int Count => _watched.Count;

    /// <summary>How often a running runner's limits (memory, process count) are checked.</summary>
    public static readonly TimeSpan LimitPollInterval = TimeSpan.FromMilliseconds(250);
    /// <summary>128 + SIGKILL: how a runner killed from outside exits.</summary>
    public const int KilledExitCode = 137;
    public const string KilledFromOutsideReason = "the runner was killed from outside the provisioner (SIGKILL)";

    public void Watch(Guid jobId, RunnerHandle handle, IRunnerBackend backend, DateTimeOffset deadline, int timeoutSeconds)
    {
        var stop = new CancellationTokenSource();
        var runner = new RunnerRef(jobId, handle.RunnerId, handle.ProcessId);
        _watched[jobId] = new Watched(stop, handle, backend, Task.Run(() => WatchAsync(jobId, handle, runner, backend, deadline, timeoutSeconds, stop.Token)));
    }

    private async Task WatchAsync(Guid jobId, RunnerHandle handle, RunnerRef runner, IRunnerBackend backend, DateTimeOffset deadline, int timeoutSeconds, CancellationToken stop)
    {
        try
        {
            var remaining = deadline - clock.GetUtcNow();
            var expired = Task.Delay(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, clock, stop);
            while (true)
            {
                var poll = Task.Delay(LimitPollInterval, clock, stop);
                var first = await Task.WhenAny(handle.Exited, expired, poll);
                if (first == handle.Exited)
                {
                    var code = await handle.Exited;
                    // A backend's own diagnosis (e.g. Kubernetes: image cannot be pulled) comes first.
                    if (handle.Failure() is { } failure)
                    {
                        await FinishRetryingAsync(jobId, failure.Outcome, null, failure.Reason, kill: false);
                        return;
                    }
                    // A limit the job hit explains its end better than the exit code it caused.
                    if (backend.LimitExceeded(runner) is { } limit)
                    {
                        await FinishRetryingAsync(jobId, RunnerOutcome.LimitExceeded, code, limit, kill: true);
                    }
                    else if (code == KilledExitCode && !stop.IsCancellationRequested)
                    {
                        // SIGKILL we did not send (we stop watching before we kill): someone outside killed it.
                        await FinishRetryingAsync(jobId, RunnerOutcome.Lost, code, KilledFromOutsideReason, kill: true);
                    }
                    else
                    {
                        await FinishRetryingAsync(jobId, RunnerOutcome.Exited, code, code == 0 ? null : $"runner agent exited with code {code}", kill: false);
                    }
                    return;
                }
                if (stop.IsCancellationRequested) return;
                if (first == expired)
                {
                    logger.LogWarning("Job {JobId} passed its deadline of {Timeout} s; killing its runner", jobId, timeoutSeconds);
                    await FinishRetryingAsync(jobId, RunnerOutcome.TimedOut, null, $"job exceeded its timeout of {timeoutSeconds} s", kill: true);
                    return;
                }
                if (backend.LimitExceeded(runner) is { } hit)
                {
                    logger.LogWarning("Job {JobId} hit a limit: {Reason}; killing its runner", jobId, hit);
                    await FinishRetryingAsync(jobId, RunnerOutcome.LimitExceeded, null, hit, kill: true);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Supervising the runner of job {JobId} failed", jobId);
        }
    }

    /// <summary>
    /// Records the end the watch saw, through a database outage: the row is read and written again
    /// (with back-off, for minutes) until it says Finished. Given up on, the runner's end would never
    /// be recorded — its watch would sit "seen exited" and every reconciler pass would leave it be.
    /// </summary>
    private Task FinishRetryingAsync(Guid jobId, RunnerOutcome outcome, int? exitCode, string? reason, bool kill) =>
        _finishRetry.ExecuteAsync(async ct => await FinishAsync(jobId, outcome, exitCode, reason, kill, ct), CancellationToken.None).AsTask();

    private readonly ResiliencePipeline _finishRetry = new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
    {
        ShouldHandle = new PredicateBuilder().Handle<Exception>(ex => ex is not OperationCanceledException),
        BackoffType = DelayBackoffType.Exponential,
        UseJitter = true,
        Delay = TimeSpan.FromSeconds(1),
        MaxDelay = TimeSpan.FromSeconds(10),
        MaxRetryAttempts = 60,
        OnRetry = args =>
        {
            logger.LogWarning(args.Outcome.Exception, "Recording a runner's end failed (attempt {Attempt}); retrying in {Delay}", args.AttemptNumber + 1, args.RetryDelay);
            return ValueTask.CompletedTask;
        },
    }).Build();

    /// <summary>Whether this process is supervising the job's runner.</summary>
    public bool IsWatching(Guid jobId) => _watched.ContainsKey(jobId);

    /// <summary>Whether the supervised runner has ended and its end is being recorded (the watch is waiting for the job's lock).</summary>
    public bool HasSeenExit(Guid jobId) => _watched.TryGetValue(jobId, out var watched) && watched.Handle.Exited.IsCompleted;

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
        runner.Finish(outcome, exitCode, reason, now);
        db.AddToOutbox(new RunnerFinished(jobId, runner.RunnerId, outcome, exitCode, reason, now, runner.Attempt), clock, RunnerMessageIds.Finished(runner.RunnerId));
        await db.SaveChangesAsync(CancellationToken.None);
        logger.LogInformation("Runner of job {JobId} finished: {Outcome} (exit {ExitCode}) {Reason}", jobId, outcome, exitCode, reason);
        return true;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// On shutdown no runner is left behind unwatched. One only this machine reaches (a local sandbox) is
    /// killed and reported lost. One any instance reaches (Kubernetes) runs on: this instance stops watching
    /// it and, once its lease is released (<see cref="Ownership.InstanceLease"/>), a live instance — or this
    /// one, restarted — takes over its watch. So a rolling upgrade fails no job.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var (jobId, watched) in _watched)
        {
            if (!watched.Backend.RunnersAreMachineBound)
            {
                if (_watched.TryRemove(jobId, out _)) watched.Stop.Cancel();
                logger.LogInformation("Runner of job {JobId} runs on; another provisioner instance takes over its watch", jobId);
                continue;
            }
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

    private sealed record Watched(CancellationTokenSource Stop, RunnerHandle Handle, IRunnerBackend Backend, Task Loop);
}
