using System.Collections.Concurrent;
using EphemeralCI.Contracts.Messages;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;

namespace EphemeralCI.Provisioner.Backends.Kubernetes;

/// <summary>
/// Watches every runner pod in the runners namespace (one watch, by label selector) and turns
/// what Kubernetes reports into RunnerProgress and the runner's exit. Also the pending watcher:
/// a pod whose image cannot be pulled, that cannot be scheduled, or that never appears fails its
/// job after the grace period with Kubernetes' own reason — never an endless pending.
/// </summary>
public sealed class KubernetesPodWatcher(
    KubernetesConnection connection,
    IRunnerProgressSink progress,
    TimeProvider clock,
    ILogger<KubernetesPodWatcher> logger) : BackgroundService
{
    private static readonly TimeSpan Reconnect = TimeSpan.FromSeconds(1);
    private readonly ConcurrentDictionary<Guid, RunnerTracker> _trackers = new();
    private readonly KubernetesOptions _options = connection.Options;

    /// <summary>Starts tracking a runner about to be created (before its Job exists, so no event is missed).</summary>
    public RunnerTracker Track(Guid jobId)
    {
        var tracker = new RunnerTracker(jobId, clock.GetUtcNow());
        _trackers[jobId] = tracker;
        return tracker;
    }

    /// <summary>
    /// Brings a runner tracked with <see cref="Track"/> up to its pods' current state without reporting
    /// what they went through before (the instance that started it did): a runner this process did not start.
    /// </summary>
    public void CatchUp(RunnerTracker tracker, IEnumerable<V1Pod> pods)
    {
        var now = clock.GetUtcNow();
        foreach (var pod in pods) tracker.Observe(PodObservation.Of(pod), now);
        if (tracker.IsFinished) _trackers.TryRemove(new KeyValuePair<Guid, RunnerTracker>(tracker.JobId, tracker));
    }

    /// <summary>Stops tracking; a runner still running ends with <paramref name="failure"/> (the provisioner removed it).</summary>
    public void Forget(Guid jobId, RunnerFailure failure)
    {
        if (_trackers.TryRemove(jobId, out var tracker)) tracker.Abandon(failure);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // A background pass is not a job's work: no root trace of its own (the Aspire dashboard drowned in them).
        using var quiet = SuppressInstrumentationScope.Begin();
        if (connection.Problem is { } problem)
        {
            logger.LogError("Kubernetes runner pods are not watched: {Problem}", problem);
            return;
        }
        var grace = GraceLoopAsync(stoppingToken);
        var scaleUps = KeepWatchingAsync("scale-up events", WatchScaleUpsOnceAsync, stoppingToken);
        await KeepWatchingAsync("runner pods", WatchOnceAsync, stoppingToken);
        await scaleUps;
        await grace;
    }

    private async Task KeepWatchingAsync(string what, Func<CancellationToken, Task> watchOnce, CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await watchOnce(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                logger.LogWarning("Watch of {What} in {Namespace} ended: {Error}; reconnecting", what, _options.Namespace, ex.Message);
            }
            try { await Task.Delay(Reconnect, clock, stoppingToken); } catch (OperationCanceledException) { break; }
        }
    }

    /// <summary>Events the cluster autoscaler (<c>TriggeredScaleUp</c>) and Karpenter (<c>Nominated</c>) post on a pod they are adding a node for.</summary>
    public static readonly IReadOnlySet<string> ScaleUpReasons = new HashSet<string>(StringComparer.Ordinal) { "TriggeredScaleUp", "Nominated" };

    private async Task WatchScaleUpsOnceAsync(CancellationToken ct)
    {
        var events = connection.Client.CoreV1.WatchListNamespacedEventAsync(
            _options.Namespace, fieldSelector: "involvedObject.kind=Pod", timeoutSeconds: 300, cancellationToken: ct);
        await foreach (var (type, e) in events)
        {
            if (type is WatchEventType.Added or WatchEventType.Modified) await OnEventAsync(e, ct);
        }
    }

    /// <summary>One core/v1 Event about a pod; public so tests can drive it without a watch.</summary>
    public async Task OnEventAsync(Corev1Event e, CancellationToken ct)
    {
        if (e.Reason is null || !ScaleUpReasons.Contains(e.Reason)) return;
        // Runner pods are named after their Job (eci-{job id:N}-xxxxx): the job id is in the name.
        var name = e.InvolvedObject?.Name ?? "";
        if (!name.StartsWith("eci-", StringComparison.Ordinal) || name.Length < 36 || !Guid.TryParseExact(name.Substring(4, 32), "N", out var jobId)) return;
        if (!_trackers.TryGetValue(jobId, out var tracker) || !tracker.ScaleUpTriggered()) return;
        var now = clock.GetUtcNow();
        await ReportAsync(new RunnerProgress(jobId, "scale_up", $"a node is being added for the runner ({e.Reason}: {e.Message?.Trim()}); waiting up to {_options.ScaleUpGracePeriod.TotalMinutes:0.#} min", now), ct);
    }

    /// <summary>
    /// One watch connection. Without a resourceVersion the API server first replays every
    /// matching pod as ADDED, so a reconnect re-reads the whole picture and a missed event costs nothing.
    /// </summary>
    private async Task WatchOnceAsync(CancellationToken ct)
    {
        var events = connection.Client.CoreV1.WatchListNamespacedPodAsync(
            _options.Namespace, labelSelector: RunnerLabels.SelectorOf(_options.Instance), timeoutSeconds: 300, cancellationToken: ct);
        await foreach (var (type, pod) in events)
        {
            await OnPodEventAsync(type, pod, ct);
        }
    }

    /// <summary>One watch event; public so tests can drive it without a watch.</summary>
    public async Task OnPodEventAsync(WatchEventType type, V1Pod pod, CancellationToken ct)
    {
        if (RunnerLabels.JobIdOf(pod.Metadata?.Labels) is not { } jobId || !_trackers.TryGetValue(jobId, out var tracker)) return;
        var now = clock.GetUtcNow();
        if (type == WatchEventType.Deleted)
        {
            tracker.PodDeleted(pod.Metadata?.Name ?? "?");
        }
        else if (type is WatchEventType.Added or WatchEventType.Modified)
        {
            foreach (var (stage, detail) in tracker.Observe(PodObservation.Of(pod), now))
            {
                await ReportAsync(new RunnerProgress(jobId, stage, detail, now), ct);
            }
        }
        if (tracker.IsFinished) _trackers.TryRemove(new KeyValuePair<Guid, RunnerTracker>(jobId, tracker));
    }

    private async Task GraceLoopAsync(CancellationToken ct)
    {
        var period = TimeSpan.FromTicks(Math.Clamp(_options.PendingGracePeriod.Ticks / 4, TimeSpan.FromMilliseconds(50).Ticks, TimeSpan.FromSeconds(5).Ticks));
        using var timer = new PeriodicTimer(period, clock);
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                var now = clock.GetUtcNow();
                foreach (var tracker in _trackers.Values)
                {
                    if (tracker.CheckGrace(now, _options.PendingGracePeriod, _options.ScaleUpGracePeriod) is not { } failure) continue;
                    _trackers.TryRemove(new KeyValuePair<Guid, RunnerTracker>(tracker.JobId, tracker));
                    // The supervisor sees Exited complete and records RunnerFinished with this reason.
                    logger.LogWarning("Runner of job {JobId} failed while pending: {Reason}", tracker.JobId, failure.Reason);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private async Task ReportAsync(RunnerProgress message, CancellationToken ct)
    {
        try
        {
            await progress.ReportAsync(message, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Progress is informative; losing one entry must not stop the watch.
            logger.LogWarning("Could not record progress {Stage} of job {JobId}: {Error}", message.Stage, message.JobId, ex.Message);
        }
    }
}
