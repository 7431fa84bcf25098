using System.Text;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Backends.Kubernetes;
using EphemeralCI.IntegrationTests.Provisioner;
using k8s;
using k8s.Models;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner.Kubernetes;

/// <summary>The Kubernetes backend end to end against the FAKE API server (no cluster runs here), through the real KubernetesClient.</summary>
public sealed class KubernetesRunnerBackendTests : IAsyncLifetime
{
    private KubernetesBackendHarness _h = null!;

    public async Task InitializeAsync() => _h = await KubernetesBackendHarness.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task Start_creates_the_token_secret_and_a_job_that_owns_it_with_a_restricted_pod()
    {
        var launch = KubernetesBackendHarness.Launch(timeoutSeconds: 900);
        await _h.Backend.StartAsync(launch, CancellationToken.None);

        var selector = RunnerLabels.SelectorFor(launch.JobId);
        var job = Assert.Single(_h.Fake.Jobs(selector));
        var secret = Assert.Single(_h.Fake.Secrets(selector));
        var pod = await _h.Fake.WaitForPodOfJobAsync(job.Metadata.Name);

        // The token: in the Secret only, owned by the Job, so Kubernetes deletes it with the Job.
        Assert.Equal(launch.JobToken + "\n", Encoding.UTF8.GetString(secret.Data[RunnerPodSpecBuilder.TokenKey]));
        var owner = Assert.Single(secret.Metadata.OwnerReferences);
        Assert.Equal(("batch/v1", "Job", job.Metadata.Name, job.Metadata.Uid, true), (owner.ApiVersion, owner.Kind, owner.Name, owner.Uid, owner.BlockOwnerDeletion == true));

        // The Job: one try, deadline from the job, removed 30 s after it finishes at the latest.
        Assert.Equal(0, job.Spec.BackoffLimit);
        Assert.Equal(30, job.Spec.TtlSecondsAfterFinished);
        Assert.InRange(job.Spec.ActiveDeadlineSeconds!.Value, 1, 900);
        Assert.Equal(launch.JobId.ToString(), job.Metadata.Annotations[RunnerLabels.JobId]);
        Assert.Equal(launch.RunnerId, job.Metadata.Annotations[RunnerLabels.RunnerId]);

        // The pod the (fake) Job controller made carries exactly the settings we rendered.
        Assert.Empty(RestrictedProfileChecker.Check(pod.Spec));
        // The token Secret reaches the init container only; the agent's container (where steps run)
        // mounts no Secret and deletes its memory-only copy before the agent starts.
        var secretVolumes = pod.Spec.Volumes.Where(v => v.Secret is not null).Select(v => v.Name).ToHashSet();
        Assert.DoesNotContain(pod.Spec.Containers.SelectMany(c => c.VolumeMounts), m => secretVolumes.Contains(m.Name));
        Assert.Contains(Assert.Single(pod.Spec.InitContainers).VolumeMounts, m => secretVolumes.Contains(m.Name));
        Assert.Contains($"rm {RunnerPodSpecBuilder.TokenDirectory}/{RunnerPodSpecBuilder.TokenKey} && exec", pod.Spec.Containers[0].Command[2]);
        Assert.Equal("ephemeralci", pod.Metadata.Labels[RunnerLabels.ManagedBy]);
        Assert.Equal(launch.JobId.ToString(), pod.Metadata.Labels[RunnerLabels.JobId]);
        Assert.Equal("linux-small", pod.Metadata.Labels[RunnerLabels.Template]);
        Assert.Equal("platform", pod.Metadata.Labels["team"]);
        Assert.Equal("Never", pod.Spec.RestartPolicy);
        Assert.False(pod.Spec.AutomountServiceAccountToken);
        Assert.False(pod.Spec.EnableServiceLinks);
        Assert.True(pod.Spec.SecurityContext.RunAsNonRoot);
        Assert.Equal(1001, pod.Spec.SecurityContext.RunAsUser);
        Assert.Equal("RuntimeDefault", pod.Spec.SecurityContext.SeccompProfile.Type);
        var agent = Assert.Single(pod.Spec.Containers);
        Assert.True(agent.SecurityContext.ReadOnlyRootFilesystem);
        Assert.False(agent.SecurityContext.AllowPrivilegeEscalation);
        Assert.Equal(["ALL"], agent.SecurityContext.Capabilities.Drop);
        Assert.Equal("500m", agent.Resources.Limits["cpu"].ToString());
        Assert.Equal("1Gi", agent.Resources.Limits["memory"].ToString());
        Assert.Equal(agent.Resources.Limits["memory"], agent.Resources.Requests["memory"]);
        Assert.Equal(agent.Resources.Limits["cpu"], agent.Resources.Requests["cpu"]);
        var mounts = agent.VolumeMounts.ToDictionary(m => m.MountPath, m => m.Name);
        var volumes = pod.Spec.Volumes.ToDictionary(v => v.Name);
        Assert.NotNull(volumes[mounts["/workspace"]].EmptyDir);
        Assert.NotNull(volumes[mounts["/tmp"]].EmptyDir);
        Assert.Equal("Memory", volumes[mounts["/var/run/eci"]].EmptyDir.Medium);
        var initMounts = pod.Spec.InitContainers.Single().VolumeMounts.ToDictionary(m => m.MountPath, m => m.Name);
        Assert.Equal(secret.Metadata.Name, volumes[initMounts[RunnerPodSpecBuilder.TokenSecretDirectory]].Secret.SecretName);
        Assert.Equal(KubernetesBackendHarness.IntakeUrl, agent.Env.Single(e => e.Name == "ECI_INTAKE_URL").Value);
        Assert.Equal(launch.JobId.ToString(), agent.Env.Single(e => e.Name == "ECI_JOB_ID").Value);
        Assert.Equal("/workspace", agent.Env.Single(e => e.Name == "ECI_WORKSPACE").Value);
        Assert.EndsWith("<&3 3<&-", agent.Command.Last());
        // The token never shows in the pod spec (readable by anyone who may get pods).
        Assert.DoesNotContain(launch.JobToken, KubernetesJson.Serialize(pod), StringComparison.Ordinal);
        Assert.True(await _h.Backend.IsAliveAsync(KubernetesBackendHarness.Ref(launch), CancellationToken.None));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public async Task Pod_events_become_progress_and_the_exit_code(int exitCode)
    {
        var launch = KubernetesBackendHarness.Launch();
        var handle = await _h.Backend.StartAsync(launch, CancellationToken.None);
        var pod = await _h.Fake.WaitForPodOfJobAsync(RunnerLabels.JobName(launch.JobId));

        _h.Fake.SchedulePod(pod.Metadata.Name);
        await WaitForStageAsync(launch.JobId, "scheduled");
        _h.Fake.PullImage(pod.Metadata.Name);
        await WaitForStageAsync(launch.JobId, "image_pulled");
        _h.Fake.StartPod(pod.Metadata.Name);
        await WaitForStageAsync(launch.JobId, "running");
        Assert.False(handle.Exited.IsCompleted);
        _h.Fake.FinishPod(pod.Metadata.Name, exitCode);

        Assert.Equal(exitCode, await handle.Exited.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Null(handle.Failure());
        await WaitForStageAsync(launch.JobId, "exited");
        Assert.Equal(["scheduled", "image_pulled", "running", "exited"], _h.Progress.For(launch.JobId).Select(p => p.Stage));
        Assert.StartsWith($"exit code {exitCode}", _h.Progress.For(launch.JobId).Last().Detail);
        Assert.False(await _h.Backend.IsAliveAsync(KubernetesBackendHarness.Ref(launch), CancellationToken.None));
    }

    [Fact]
    public async Task A_dropped_watch_is_resumed_and_no_exit_is_missed()
    {
        var launch = KubernetesBackendHarness.Launch();
        var handle = await _h.Backend.StartAsync(launch, CancellationToken.None);
        var pod = await _h.Fake.WaitForPodOfJobAsync(RunnerLabels.JobName(launch.JobId));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(_h.Fake.OpenWatches > 0), "the pod watch to connect", 30);

        _h.Fake.DropWatches();
        _h.Fake.StartPod(pod.Metadata.Name);
        _h.Fake.FinishPod(pod.Metadata.Name, 0);

        Assert.Equal(0, await handle.Exited.WaitAsync(TimeSpan.FromSeconds(30)));
        // Missed events cost nothing: the replay on reconnect implies the stages before "exited".
        await WaitForStageAsync(launch.JobId, "exited");
        Assert.Equal(["scheduled", "image_pulled", "running", "exited"], _h.Progress.For(launch.JobId).Select(p => p.Stage));
    }

    [Fact]
    public async Task Kill_deletes_the_job_at_once_and_the_secret_goes_with_it()
    {
        var launch = KubernetesBackendHarness.Launch();
        var handle = await _h.Backend.StartAsync(launch, CancellationToken.None);
        var pod = await _h.Fake.WaitForPodOfJobAsync(RunnerLabels.JobName(launch.JobId));
        _h.Fake.StartPod(pod.Metadata.Name);

        await _h.Backend.KillAsync(KubernetesBackendHarness.Ref(launch), CancellationToken.None);

        var selector = RunnerLabels.SelectorFor(launch.JobId);
        Assert.Empty(_h.Fake.Jobs(selector));
        Assert.Empty(_h.Fake.Pods(selector));
        // Before DestroyAsync: the garbage collector took the token Secret with its owner Job.
        Assert.Empty(_h.Fake.Secrets(selector));
        Assert.Contains((RunnerLabels.JobName(launch.JobId), "Foreground"), _h.Fake.JobDeletes);
        Assert.True(handle.Exited.IsCompleted);
        Assert.False(_h.Backend.IsAlive(KubernetesBackendHarness.Ref(launch)));

        // Idempotent.
        await _h.Backend.KillAsync(KubernetesBackendHarness.Ref(launch), CancellationToken.None);
        await _h.Backend.DestroyAsync(KubernetesBackendHarness.Ref(launch), CancellationToken.None);
    }

    [Fact]
    public async Task Leftovers_not_kept_are_removed_and_nothing_else()
    {
        var keep = KubernetesBackendHarness.Launch();
        var stale = KubernetesBackendHarness.Launch();
        await _h.Backend.StartAsync(keep, CancellationToken.None);
        await _h.Backend.StartAsync(stale, CancellationToken.None);
        var client = _h.Connection.Client;
        const string ns = "ephemeralci-runners";
        // Someone else's Job in the namespace, and a token Secret whose Job was never made (crash between the two creates).
        await client.BatchV1.CreateNamespacedJobAsync(new V1Job
        {
            Metadata = new V1ObjectMeta { Name = "not-ours", Labels = new Dictionary<string, string> { ["app"] = "other" } },
            Spec = new V1JobSpec { Template = new V1PodTemplateSpec { Spec = new V1PodSpec { RestartPolicy = "Never", Containers = [new V1Container { Name = "c", Image = "busybox" }] } } },
        }, ns);
        var orphan = Guid.NewGuid();
        await client.CoreV1.CreateNamespacedSecretAsync(new V1Secret
        {
            Metadata = new V1ObjectMeta { Name = RunnerLabels.SecretName(orphan), Labels = new Dictionary<string, string> { [RunnerLabels.ManagedBy] = "ephemeralci", [RunnerLabels.JobId] = orphan.ToString() } },
        }, ns);

        await _h.Backend.RemoveLeftoversAsync(new HashSet<Guid> { keep.JobId }, CancellationToken.None);
        // The orphan's runner row is still open (rows are written before anything is created): its
        // teardown deletes the Secret by name — the provisioner may not list Secrets (their data).
        await _h.Backend.DestroyAsync(new RunnerRef(orphan, "runner-orphan", null), CancellationToken.None);

        Assert.Single(_h.Fake.Jobs(RunnerLabels.SelectorFor(keep.JobId)));
        Assert.Single(_h.Fake.Secrets(RunnerLabels.SelectorFor(keep.JobId)));
        Assert.Empty(_h.Fake.Jobs(RunnerLabels.SelectorFor(stale.JobId)));
        Assert.Empty(_h.Fake.Pods(RunnerLabels.SelectorFor(stale.JobId)));
        Assert.Empty(_h.Fake.Secrets(RunnerLabels.SelectorFor(stale.JobId)));
        Assert.Empty(_h.Fake.Secrets(RunnerLabels.SelectorFor(orphan)));
        Assert.Single(_h.Fake.Jobs("app=other"));
    }

    [Fact]
    public async Task A_template_that_would_run_as_root_creates_nothing()
    {
        var launch = KubernetesBackendHarness.Launch(template: t => t.RunAsUser = 0);
        var ex = await Assert.ThrowsAsync<RunnerStartException>(() => _h.Backend.StartAsync(launch, CancellationToken.None));
        Assert.Contains("RunAsUser 0", ex.Message);
        Assert.Empty(_h.Fake.Secrets(RunnerLabels.Selector));
        Assert.Empty(_h.Fake.Jobs(RunnerLabels.Selector));
    }

    private async Task WaitForStageAsync(Guid jobId, string stage) =>
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(_h.Progress.For(jobId).Any(p => p.Stage == stage)),
            () => $"stage {stage}; seen: {string.Join(", ", _h.Progress.For(jobId).Select(p => p.Stage))}", 30);
}

/// <summary>Never an endless pending: stuck pods fail after the (here short) grace period with Kubernetes' reason.</summary>
public sealed class KubernetesPendingPodTests : IAsyncLifetime
{
    private KubernetesBackendHarness _h = null!;

    public async Task InitializeAsync()
    {
        // Short, but long enough that a slow first watch delivery is not mistaken for "no pod".
        _h = await KubernetesBackendHarness.StartAsync(pendingGrace: TimeSpan.FromSeconds(5));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(_h.Fake.OpenWatches > 0), "the pod watch to connect", 30);
    }

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Theory]
    [InlineData("ErrImagePull")]
    [InlineData("ImagePullBackOff")]
    [InlineData("InvalidImageName")]
    public async Task An_image_that_cannot_be_pulled_fails_the_job_with_kubernetes_reason(string reason)
    {
        var launch = KubernetesBackendHarness.Launch(template: t => t.Image = "registry.example/does-not-exist:9");
        var handle = await _h.Backend.StartAsync(launch, CancellationToken.None);
        var pod = await _h.Fake.WaitForPodOfJobAsync(RunnerLabels.JobName(launch.JobId));
        _h.Fake.FailImagePull(pod.Metadata.Name, reason, "manifest unknown: registry.example/does-not-exist:9");

        await handle.Exited.WaitAsync(TimeSpan.FromSeconds(30));
        var failure = handle.Failure();
        Assert.NotNull(failure);
        Assert.Equal(RunnerOutcome.FailedToStart, failure.Outcome);
        Assert.Contains($"image 'registry.example/does-not-exist:9' could not be pulled: {reason} (manifest unknown: registry.example/does-not-exist:9)", failure.Reason);
        var waiting = Assert.Single(_h.Progress.For(launch.JobId), p => p.Stage == "waiting");
        Assert.Contains(reason, waiting.Detail);
    }

    [Fact]
    public async Task A_pod_that_cannot_be_scheduled_fails_the_job_with_the_scheduler_message()
    {
        var launch = KubernetesBackendHarness.Launch();
        var handle = await _h.Backend.StartAsync(launch, CancellationToken.None);
        var pod = await _h.Fake.WaitForPodOfJobAsync(RunnerLabels.JobName(launch.JobId));
        _h.Fake.MakeUnschedulable(pod.Metadata.Name, "0/3 nodes are available: 3 Insufficient memory.");

        await handle.Exited.WaitAsync(TimeSpan.FromSeconds(30));
        var failure = handle.Failure();
        Assert.NotNull(failure);
        Assert.Equal(RunnerOutcome.FailedToStart, failure.Outcome);
        Assert.Contains("could not be scheduled: Unschedulable (0/3 nodes are available: 3 Insufficient memory.)", failure.Reason);
    }

    [Fact]
    public async Task A_missing_namespace_is_a_readable_start_failure_that_leaves_nothing()
    {
        await using var h = await KubernetesBackendHarness.StartAsync(ns: "no-such-namespace");
        var ex = await Assert.ThrowsAsync<RunnerStartException>(() => h.Backend.StartAsync(KubernetesBackendHarness.Launch(), CancellationToken.None));
        Assert.Contains("namespaces \"no-such-namespace\" not found", ex.Message);
        Assert.Empty(h.Fake.Secrets());
    }
}

/// <summary>A cluster autoscaler adding a node: the pending runner waits for it instead of failing as unschedulable.</summary>
public sealed class ScaleUpAwarePendingTests
{
    [Fact]
    public async Task An_unschedulable_pod_the_autoscaler_is_adding_a_node_for_waits_past_the_pending_grace_and_runs()
    {
        await using var h = await KubernetesBackendHarness.StartAsync(pendingGrace: TimeSpan.FromSeconds(1), scaleUpGrace: TimeSpan.FromSeconds(60));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(h.Fake.OpenWatchesOf("events") > 0), "the event watch to connect", 30);

        // Waits for its node.
        var waiting = KubernetesBackendHarness.Launch();
        var waitingHandle = await h.Backend.StartAsync(waiting, CancellationToken.None);
        var waitingPod = await h.Fake.WaitForPodOfJobAsync(RunnerLabels.JobName(waiting.JobId));
        // The autoscaler's event is seen before the pod turns unschedulable: with a 1 s pending grace, an event watch
        // slower than that on a loaded machine would otherwise find the runner already failed (and the test flaked).
        // The autoscaler posts its event again while the pod waits (as a real one does); in about one run of six under
        // load the fake's first delivery was not seen in 30 s (not found yet: noted for the provisioner's owner).
        for (var posted = 1; ; posted++)
        {
            await h.Connection.Client.CoreV1.CreateNamespacedEventAsync(new Corev1Event
            {
                Metadata = new V1ObjectMeta { Name = $"{waitingPod.Metadata.Name}.scaleup{posted}" },
                InvolvedObject = new V1ObjectReference { Kind = "Pod", Name = waitingPod.Metadata.Name, NamespaceProperty = "ephemeralci-runners" },
                Reason = "TriggeredScaleUp",
                Message = "pod triggered scale-up: [{runners 2->3 (max: 10)}]",
                Type = "Normal",
            }, "ephemeralci-runners");
            try
            {
                await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(h.Progress.For(waiting.JobId).Any(p => p.Stage == "scale_up")), "the scale-up on the timeline", 10);
                break;
            }
            catch (TimeoutException) when (posted < 3) { }
        }
        h.Fake.MakeUnschedulable(waitingPod.Metadata.Name);

        // No scale-up for this one: it fails at the ordinary grace period, as before.
        var stuck = KubernetesBackendHarness.Launch();
        var stuckHandle = await h.Backend.StartAsync(stuck, CancellationToken.None);
        h.Fake.MakeUnschedulable((await h.Fake.WaitForPodOfJobAsync(RunnerLabels.JobName(stuck.JobId))).Metadata.Name);
        await stuckHandle.Exited.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(RunnerOutcome.FailedToStart, stuckHandle.Failure()!.Outcome);

        Assert.False(waitingHandle.Exited.IsCompleted, "the runner whose node is coming was failed as unschedulable");
        h.Fake.StartPod(waitingPod.Metadata.Name);
        h.Fake.FinishPod(waitingPod.Metadata.Name, 0);
        Assert.Equal(0, await waitingHandle.Exited.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Null(waitingHandle.Failure());
    }
}
