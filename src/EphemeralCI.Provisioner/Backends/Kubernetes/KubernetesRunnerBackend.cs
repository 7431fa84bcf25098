using System.Net;
using System.Text.Json;
using EphemeralCI.Contracts.Messages;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Provisioner.Backends.Kubernetes;

/// <summary>
/// Runners as Kubernetes pods: one batch/v1 Job per job in the runners namespace, its job token
/// in a Secret the Job owns (so Kubernetes deletes it with the Job), the restricted Pod Security
/// Standard checked before anything is created. The provisioner deletes the Job itself when the
/// job ends; <c>ttlSecondsAfterFinished</c> is the safety net.
/// </summary>
public sealed class KubernetesRunnerBackend(
    KubernetesConnection connection,
    KubernetesPodWatcher watcher,
    TimeProvider clock,
    ILogger<KubernetesRunnerBackend> logger) : IRunnerBackend
{
    public const string BackendName = "kubernetes";
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);
    private readonly KubernetesOptions _options = connection.Options;

    public string Name => BackendName;

    private string Ns => _options.Namespace;

    public string? MissingPrerequisite()
    {
        if (string.IsNullOrWhiteSpace(_options.IntakeUrl))
        {
            return $"{KubernetesOptions.Section}:IntakeUrl is not set: give the intake's in-cluster URL (e.g. http://intake.ephemeralci.svc:8080)";
        }
        return connection.Problem;
    }

    public async Task<RunnerHandle> StartAsync(RunnerLaunch launch, CancellationToken ct)
    {
        if (MissingPrerequisite() is { } missing) throw new RunnerStartException(missing);
        RunnerObjects objects;
        try
        {
            objects = RunnerPodSpecBuilder.Build(launch, _options, clock.GetUtcNow());
        }
        catch (ArgumentException ex)
        {
            throw new RunnerStartException(ex.Message, ex);
        }
        var violations = RestrictedProfileChecker.Check(objects.Job.Spec.Template.Spec);
        if (violations.Count > 0)
        {
            throw new RunnerStartException($"runner template '{launch.TemplateName}' would break the restricted Pod Security Standard: {string.Join("; ", violations)}");
        }

        var client = connection.Client;
        var tracker = watcher.Track(launch.JobId);
        var jobName = objects.Job.Metadata.Name;
        try
        {
            // Secret first: the pod mounts it, so it must exist before the Job makes the pod.
            await CreateFreshAsync(
                () => client.CoreV1.CreateNamespacedSecretAsync(objects.Secret, Ns, cancellationToken: ct),
                () => DeleteSecretAsync(launch.JobId, ct));
            var job = await CreateFreshAsync(
                () => client.BatchV1.CreateNamespacedJobAsync(objects.Job, Ns, cancellationToken: ct),
                () => DeleteJobAsync(launch.JobId, "Background", ct));

            // Then the Secret becomes the Job's, so deleting the Job (by us, by the TTL, by anyone)
            // garbage-collects the token with it.
            var owner = new V1OwnerReference
            {
                ApiVersion = "batch/v1",
                Kind = "Job",
                Name = job.Metadata.Name,
                Uid = job.Metadata.Uid,
                BlockOwnerDeletion = true,
            };
            var patch = new V1Patch(new { metadata = new { ownerReferences = new[] { owner } } }, V1Patch.PatchType.MergePatch);
            await client.CoreV1.PatchNamespacedSecretAsync(patch, objects.Secret.Metadata.Name, Ns, cancellationToken: ct);
        }
        catch (Exception ex) when (ex is HttpOperationException or HttpRequestException or KubernetesException or OperationCanceledException)
        {
            watcher.Forget(launch.JobId, new RunnerFailure(RunnerOutcome.FailedToStart, "runner could not be created"));
            // Leave nothing half-made: the token must not outlive a runner that never started.
            await DestroyQuietlyAsync(launch.JobId);
            if (ex is OperationCanceledException) throw;
            throw new RunnerStartException($"could not create the runner on Kubernetes: {Describe(ex)}", ex);
        }

        logger.LogInformation("Created Kubernetes Job {Namespace}/{Job} for job {JobId}", Ns, jobName, launch.JobId);
        return new RunnerHandle(launch.RunnerId, null, tracker.Exited) { Failure = () => tracker.Failure };
    }

    /// <summary>
    /// Takes over the watch of a runner another instance started (or this one, before a restart): the
    /// pod runs on in the cluster whoever watches it. Tracked first, then caught up with its pods' state
    /// (so no event falls between); null when its Job is gone.
    /// </summary>
    public async Task<RunnerHandle?> ReattachAsync(RunnerRef runner, CancellationToken ct)
    {
        if (MissingPrerequisite() is not null) return null;
        var tracker = watcher.Track(runner.JobId);
        try
        {
            await connection.Client.BatchV1.ReadNamespacedJobAsync(RunnerLabels.JobName(runner.JobId), Ns, cancellationToken: ct);
            var pods = await connection.Client.CoreV1.ListNamespacedPodAsync(Ns, labelSelector: RunnerLabels.SelectorFor(runner.JobId), cancellationToken: ct);
            watcher.CatchUp(tracker, pods.Items);
        }
        catch (Exception ex) when (ex is HttpOperationException or HttpRequestException or KubernetesException)
        {
            watcher.Forget(runner.JobId, new RunnerFailure(RunnerOutcome.Lost, "the runner could not be found again on Kubernetes"));
            if (ex is HttpOperationException { Response.StatusCode: HttpStatusCode.NotFound }) return null;
            logger.LogWarning("Runner of job {JobId} could not be watched again: {Error}", runner.JobId, Describe(ex));
            return null;
        }
        logger.LogInformation("Watching Kubernetes Job {Namespace}/{Job} of job {JobId} again", Ns, RunnerLabels.JobName(runner.JobId), runner.JobId);
        return new RunnerHandle(runner.RunnerId, null, tracker.Exited) { Failure = () => tracker.Failure };
    }

    /// <summary>Creates an object; if one of that name is left from an earlier attempt, removes it and creates a fresh one.</summary>
    private static async Task<T> CreateFreshAsync<T>(Func<Task<T>> create, Func<Task> removeStale)
    {
        try
        {
            return await create();
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.Conflict)
        {
            await removeStale();
            return await create();
        }
    }

    /// <summary>Deletes the Job at once (its pods with it) and returns once no pod of the runner is left.</summary>
    public async Task KillAsync(RunnerRef runner, CancellationToken ct)
    {
        watcher.Forget(runner.JobId, new RunnerFailure(RunnerOutcome.Lost, "the runner was deleted by the provisioner"));
        await DeleteJobAsync(runner.JobId, "Foreground", ct);
        var waitUntil = clock.GetUtcNow() + _options.DeleteTimeout;
        while (true)
        {
            var pods = await connection.Client.CoreV1.ListNamespacedPodAsync(Ns, labelSelector: RunnerLabels.SelectorFor(runner.JobId), cancellationToken: ct);
            if (pods.Items.Count == 0) return;
            if (clock.GetUtcNow() >= waitUntil)
            {
                logger.LogWarning("Pods of job {JobId} still exist {Timeout} after their Job was deleted: {Pods}",
                    runner.JobId, _options.DeleteTimeout, string.Join(", ", pods.Items.Select(p => p.Metadata.Name)));
                return;
            }
            await Task.Delay(PollInterval, clock, ct);
        }
    }

    /// <summary>Makes sure the Job and the token Secret are gone (the Secret normally goes with the Job).</summary>
    public async Task DestroyAsync(RunnerRef runner, CancellationToken ct)
    {
        watcher.Forget(runner.JobId, new RunnerFailure(RunnerOutcome.Lost, "the runner was deleted by the provisioner"));
        await DeleteJobAsync(runner.JobId, "Background", ct);
        await DeleteSecretAsync(runner.JobId, ct);
    }

    /// <summary>The Job exists and has not finished. The interface is synchronous; this asks the API server.</summary>
    public bool IsAlive(RunnerRef runner) => IsAliveAsync(runner, CancellationToken.None).GetAwaiter().GetResult();

    public async Task<bool> IsAliveAsync(RunnerRef runner, CancellationToken ct)
    {
        try
        {
            var job = await connection.Client.BatchV1.ReadNamespacedJobAsync(RunnerLabels.JobName(runner.JobId), Ns, cancellationToken: ct);
            var finished = job.Status?.Conditions?.Any(c => c.Type is "Complete" or "Failed" && c.Status == "True") == true;
            return !finished && job.Metadata.DeletionTimestamp is null;
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    /// <summary>Deletes every Job this backend labelled whose job is not in <paramref name="keep"/> (its token Secret goes with it, as its owner).</summary>
    public async Task RemoveLeftoversAsync(IReadOnlySet<Guid> keep, CancellationToken ct)
    {
        if (MissingPrerequisite() is not null) return;
        var client = connection.Client;
        // Only this instance's (and unlabelled ones from before instances existed): another
        // provisioner sharing the namespace keeps its runners.
        var jobs = await client.BatchV1.ListNamespacedJobAsync(Ns, labelSelector: RunnerLabels.Selector, cancellationToken: ct);
        foreach (var job in jobs.Items)
        {
            if (!RunnerLabels.BelongsTo(job.Metadata.Labels, _options.Instance)) continue;
            if (RunnerLabels.JobIdOf(job.Metadata.Labels) is not { } jobId || keep.Contains(jobId)) continue;
            logger.LogWarning("Deleting leftover runner Job {Job} of job {JobId}", job.Metadata.Name, jobId);
            await DeleteJobAsync(jobId, "Background", ct);
        }
        // Token Secrets are not listed: `list secrets` would return every token's data in the namespace.
        // A Secret whose Job was never made (a crash between the two creates) belongs to a runner row
        // still open in the database; its teardown (DestroyAsync) deletes the Secret by its name.
    }

    private async Task DeleteJobAsync(Guid jobId, string propagation, CancellationToken ct)
    {
        try
        {
            await connection.Client.BatchV1.DeleteNamespacedJobAsync(RunnerLabels.JobName(jobId), Ns,
                new V1DeleteOptions { PropagationPolicy = propagation }, cancellationToken: ct);
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
        }
    }

    private async Task DeleteSecretAsync(Guid jobId, CancellationToken ct)
    {
        try
        {
            await connection.Client.CoreV1.DeleteNamespacedSecretAsync(RunnerLabels.SecretName(jobId), Ns, cancellationToken: ct);
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
        }
    }

    private async Task DestroyQuietlyAsync(Guid jobId)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await DeleteJobAsync(jobId, "Background", cts.Token);
            await DeleteSecretAsync(jobId, cts.Token);
        }
        catch (Exception ex)
        {
            logger.LogError("Could not remove the half-created runner of job {JobId}: {Error}", jobId, Describe(ex));
        }
    }

    /// <summary>The API server's own message (a Status object) when there is one.</summary>
    public static string Describe(Exception ex)
    {
        if (ex is HttpOperationException { Response: { } response })
        {
            try
            {
                using var doc = JsonDocument.Parse(response.Content ?? "");
                if (doc.RootElement.TryGetProperty("message", out var message)) return $"{(int)response.StatusCode} {message.GetString()}";
            }
            catch (JsonException)
            {
            }
            return $"{(int)response.StatusCode} {response.ReasonPhrase}";
        }
        return ex.Message;
    }
}
