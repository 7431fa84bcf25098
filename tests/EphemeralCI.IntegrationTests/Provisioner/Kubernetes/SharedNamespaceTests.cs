using k8s;
using EphemeralCI.Provisioner.Backends.Kubernetes;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner.Kubernetes;

/// <summary>Two provisioners sharing one runner namespace: each reaps only its own runners.</summary>
public sealed class SharedNamespaceTests : IAsyncLifetime
{
    private KubernetesBackendHarness _h = null!;

    public async Task InitializeAsync() => _h = await KubernetesBackendHarness.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task A_provisioner_never_reaps_the_runners_of_another_instance_in_the_same_namespace()
    {
        // This backend is instance "default"; the other provisioner's runner carries "blue".
        var theirs = KubernetesBackendHarness.Launch();
        var options = new KubernetesOptions { IntakeUrl = KubernetesBackendHarness.IntakeUrl, Instance = "blue" };
        var objects = RunnerPodSpecBuilder.Build(theirs, options, DateTimeOffset.UtcNow);
        Assert.Equal("blue", objects.Job.Metadata.Labels[RunnerLabels.Instance]);
        await _h.Connection.Client.BatchV1.CreateNamespacedJobAsync(objects.Job, options.Namespace);
        await _h.Connection.Client.CoreV1.CreateNamespacedSecretAsync(objects.Secret, options.Namespace);
        var ours = KubernetesBackendHarness.Launch();
        await _h.Backend.StartAsync(ours, CancellationToken.None);

        await _h.Backend.RemoveLeftoversAsync(new HashSet<Guid>(), CancellationToken.None);

        Assert.Single(_h.Fake.Jobs(RunnerLabels.SelectorFor(theirs.JobId)));
        Assert.Single(_h.Fake.Secrets(RunnerLabels.SelectorFor(theirs.JobId)));
        Assert.Empty(_h.Fake.Jobs(RunnerLabels.SelectorFor(ours.JobId)));
    }
}
