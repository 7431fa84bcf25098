using System.Security.Cryptography;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner;
using EphemeralCI.Provisioner.Backends.Kubernetes;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.IntegrationTests.Fakes.FakeKubernetes;
using EphemeralCI.IntegrationTests.Infrastructure;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner.Kubernetes;

/// <summary>
/// Two provisioner instances (real Postgres, real RabbitMQ) on one installation, against the FAKE
/// Kubernetes API server, as two replicas of a Deployment. A rolling upgrade stops one gracefully while
/// its runner's pod runs: the pod runs on, the other replica takes over its watch and records how it
/// really ended — not Lost. And a replica restarted under the same name watches its own runner again.
/// </summary>
public sealed class KubernetesHandOverTests : IAsyncLifetime
{
    private FakeKubernetesApiServer _fake = null!;
    private string _database = null!;
    private string _broker = null!;
    private readonly string _cgroup = "eci-test-" + Guid.NewGuid().ToString("N")[..8];
    private readonly string _workRoot = Path.Combine(Path.GetTempPath(), "eci-handover-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly string _signingKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
    private readonly List<IHost> _hosts = [];

    public async Task InitializeAsync()
    {
        _fake = await FakeKubernetesApiServer.StartAsync();
        _database = await RealServices.CreateDatabaseAsync("handover");
        _broker = await RealServices.CreateRabbitMqVirtualHostAsync("handover");
    }

    public async Task DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            try { await host.StopAsync(); } catch (ObjectDisposedException) { }
            host.Dispose();
        }
        await _fake.DisposeAsync();
    }

    private async Task<IHost> StartInstanceAsync(string name)
    {
        var host = await KubernetesProvisionerHost.StartAsync(_fake, _database, _broker, _signingKey, (_cgroup, Path.Combine(_workRoot, name)),
            new Dictionary<string, string?>
            {
                ["Provisioner:Instance:Name"] = name,
                ["Provisioner:Instance:HeartbeatInterval"] = "00:00:01",
                ["Provisioner:Instance:LeaseDuration"] = "00:00:20",
                ["Provisioner:Reconciler:IntervalSeconds"] = "1",
            });
        _hosts.Add(host);
        return host;
    }

    [Fact]
    public async Task A_replica_stopped_gracefully_hands_its_running_pod_to_the_other_which_records_its_real_end()
    {
        var first = await StartInstanceAsync("replica-a");
        var jobId = Guid.NewGuid();
        await first.Services.GetRequiredService<IBus>().Publish(new RunJob(jobId, "k8s", "acme/app", "main", 120, DateTimeOffset.UtcNow));
        var pod = await WaitForPodAsync(first, jobId);
        _fake.SchedulePod(pod.Metadata.Name);
        _fake.StartPod(pod.Metadata.Name);
        await WaitUntilAsync(first, jobId, r => r.State == RunnerState.Running, "running on replica-a");

        var second = await StartInstanceAsync("replica-b");
        await first.StopAsync(); // the rolling upgrade's SIGTERM

        // The pod runs on: nothing of it was deleted by the stopping replica.
        Assert.Empty(_fake.JobDeletes);
        Assert.Single(_fake.Pods(RunnerLabels.SelectorFor(jobId)));
        // The other replica takes it over at its next pass (the lease was released, not left to run out).
        var adoptedWithin = System.Diagnostics.Stopwatch.StartNew();
        await WaitUntilAsync(second, jobId, r => r.Instance == "replica-b", "adopted by replica-b");
        Assert.True(adoptedWithin.Elapsed < TimeSpan.FromSeconds(15), $"adopted after {adoptedWithin.Elapsed}: the lease was left to run out");
        var adopted = await RunnerAsync(second, jobId);
        Assert.Equal((RunnerState.Running, null), (adopted!.State, adopted.Outcome));

        // The job ends in the cluster; the replica that watches it now records that end, and tears it down.
        _fake.FinishPod(pod.Metadata.Name, 0);
        await WaitUntilAsync(second, jobId, r => r.State == RunnerState.Destroyed, "destroyed by replica-b");
        var ended = await RunnerAsync(second, jobId);
        Assert.Equal((RunnerOutcome.Exited, (int?)0), (ended!.Outcome, ended.ExitCode));
        Assert.Empty(_fake.Jobs(RunnerLabels.SelectorFor(jobId)));
        Assert.Empty(_fake.Secrets(RunnerLabels.SelectorFor(jobId)));
    }

    [Fact]
    public async Task A_replica_restarted_under_its_name_watches_its_running_pod_again()
    {
        var before = await StartInstanceAsync("replica-a");
        var jobId = Guid.NewGuid();
        await before.Services.GetRequiredService<IBus>().Publish(new RunJob(jobId, "k8s", "acme/app", "main", 120, DateTimeOffset.UtcNow));
        var pod = await WaitForPodAsync(before, jobId);
        _fake.SchedulePod(pod.Metadata.Name);
        _fake.StartPod(pod.Metadata.Name);
        await WaitUntilAsync(before, jobId, r => r.State == RunnerState.Running, "running");
        await before.StopAsync();

        var after = await StartInstanceAsync("replica-a");
        // The pod finished while no provisioner watched: its end is read from the pod, not guessed.
        _fake.FinishPod(pod.Metadata.Name, 3);
        await WaitUntilAsync(after, jobId, r => r.State == RunnerState.Destroyed, "destroyed after the restart");
        var ended = await RunnerAsync(after, jobId);
        Assert.Equal((RunnerOutcome.Exited, (int?)3), (ended!.Outcome, ended.ExitCode));
    }

    private async Task<k8s.Models.V1Pod> WaitForPodAsync(IHost host, Guid jobId)
    {
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(_fake.Pods(RunnerLabels.SelectorFor(jobId)).Count > 0), $"a pod for job {jobId}");
        return _fake.Pods(RunnerLabels.SelectorFor(jobId))[0];
    }

    private static async Task<RunnerRecord?> RunnerAsync(IHost host, Guid jobId)
    {
        await using var scope = host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        return await db.Runners.AsNoTracking().FirstOrDefaultAsync(r => r.JobId == jobId);
    }

    private static Task WaitUntilAsync(IHost host, Guid jobId, Func<RunnerRecord, bool> condition, string what) =>
        ProvisionerFixture.WaitUntilAsync(async () => await RunnerAsync(host, jobId) is { } r && condition(r), $"runner of {jobId}: {what}");
}
