using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Backends.Kubernetes;
using EphemeralCI.Provisioner.Teardown;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner.Kubernetes;

/// <summary>
/// The teardown check of Kubernetes runners against the fake API server (named so: no cluster here):
/// the Job and token Secret answer 404 and no pod is left — or a pod that will not delete is found.
/// </summary>
public sealed class KubernetesTeardownCheckTests : IAsyncLifetime
{
    private KubernetesBackendHarness _h = null!;
    private ServiceProvider _services = null!;

    public async Task InitializeAsync()
    {
        _h = await KubernetesBackendHarness.StartAsync(deleteTimeout: TimeSpan.FromMilliseconds(300));
        _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    }

    public async Task DisposeAsync()
    {
        await _services.DisposeAsync();
        await _h.DisposeAsync();
    }

    private RunnerTeardown Teardown() => new(
        [new KubernetesTeardownVerifier(_h.Connection)],
        Options.Create(new TeardownOptions { RetryDelay = TimeSpan.FromMilliseconds(50) }),
        new TeardownMetrics(_services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>()),
        TimeProvider.System, NullLogger<RunnerTeardown>.Instance);

    [Fact]
    public async Task A_runner_deleted_cleanly_has_no_Job_pod_or_token_Secret_left()
    {
        var launch = KubernetesBackendHarness.Launch();
        await _h.Backend.StartAsync(launch, CancellationToken.None);
        var pod = await _h.Fake.WaitForPodOfJobAsync(RunnerLabels.JobName(launch.JobId));
        _h.Fake.StartPod(pod.Metadata.Name);

        var report = await Teardown().DestroyAsync(_h.Backend, KubernetesBackendHarness.Ref(launch), _ => Task.CompletedTask, CancellationToken.None);

        Assert.True(report!.Passed, string.Join("; ", report.Checks.Where(c => !c.Passed).Select(c => $"{c.Name}: {c.Found}")));
        Assert.Equal(["kubernetes.job", "kubernetes.pods", "kubernetes.secret"], report.Checks.Select(c => c.Name));
        // The Secret was probed with a dry run (the provisioner may not read Secrets).
        Assert.Contains(_h.Fake.Deletes, d => d is { Resource: "secrets", DryRun: "All" } && d.Name == RunnerLabels.SecretName(launch.JobId));
    }

    [Fact]
    public async Task A_pod_that_will_not_delete_is_found_and_reported_after_three_cleanups()
    {
        var launch = KubernetesBackendHarness.Launch();
        await _h.Backend.StartAsync(launch, CancellationToken.None);
        var pod = await _h.Fake.WaitForPodOfJobAsync(RunnerLabels.JobName(launch.JobId));
        _h.Fake.StartPod(pod.Metadata.Name);
        _h.Fake.StickPod(pod.Metadata.Name);

        var report = await Teardown().DestroyAsync(_h.Backend, KubernetesBackendHarness.Ref(launch), _ => Task.CompletedTask, CancellationToken.None);

        Assert.False(report!.Passed);
        Assert.Equal(3, report.Attempts);
        var pods = Assert.Single(report.Checks, c => c.Name == "kubernetes.pods");
        Assert.False(pods.Passed);
        Assert.Equal($"{pod.Metadata.Name} (terminating)", pods.Found);
        Assert.All(report.Checks.Where(c => c.Name != "kubernetes.pods"), c => Assert.True(c.Passed, c.Name));
        Assert.Equal(3, report.Leftovers!.Count);
    }

    [Fact]
    public async Task The_check_changes_nothing_it_finds_a_live_runner_whole()
    {
        var launch = KubernetesBackendHarness.Launch();
        await _h.Backend.StartAsync(launch, CancellationToken.None);
        await _h.Fake.WaitForPodOfJobAsync(RunnerLabels.JobName(launch.JobId));

        var checks = await new KubernetesTeardownVerifier(_h.Connection).VerifyAsync(KubernetesBackendHarness.Ref(launch), CancellationToken.None);

        Assert.All(checks, c => Assert.False(c.Passed, c.Name));
        var selector = RunnerLabels.SelectorFor(launch.JobId);
        Assert.Single(_h.Fake.Secrets(selector));
        Assert.Single(_h.Fake.Jobs(selector));
        Assert.Single(_h.Fake.Pods(selector));
    }
}
