using System.Security.Cryptography;
using System.Text.Json;
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
/// The whole provisioner module (real Postgres, real RabbitMQ) with a template on the kubernetes
/// backend, against the FAKE Kubernetes API server: RunJob → Job + Secret, pod events → the
/// runner's outcome and RunnerProgress in the outbox, cancel → deleted at once, nothing left.
/// </summary>
public sealed class ProvisionerOnKubernetesTests : IAsyncLifetime
{
    private FakeKubernetesApiServer _fake = null!;
    private IHost _host = null!;

    public async Task InitializeAsync()
    {
        _fake = await FakeKubernetesApiServer.StartAsync();
        _host = await KubernetesProvisionerHost.StartAsync(_fake,
            await RealServices.CreateDatabaseAsync("provk8s"), await RealServices.CreateRabbitMqVirtualHostAsync("provk8s"),
            Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
            ("eci-test-" + Guid.NewGuid().ToString("N")[..8], Path.Combine(Path.GetTempPath(), "eci-provk8s-" + Guid.NewGuid().ToString("N")[..8])),
            new Dictionary<string, string?> { ["Provisioner:Kubernetes:PendingGracePeriod"] = "00:00:02" });
    }

    public async Task DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
        await _fake.DisposeAsync();
    }

    [Fact]
    public async Task A_finished_pod_finishes_the_runner_and_every_object_goes()
    {
        var jobId = Guid.NewGuid();
        await PublishAsync(new RunJob(jobId, "k8s", "acme/app", "main", 120, DateTimeOffset.UtcNow));
        var pod = await WaitForPodAsync(jobId);
        _fake.SchedulePod(pod.Metadata.Name);
        _fake.PullImage(pod.Metadata.Name);
        _fake.StartPod(pod.Metadata.Name);
        _fake.FinishPod(pod.Metadata.Name, 0);

        await WaitForStateAsync(jobId, RunnerState.Destroyed);
        var runner = await RunnerAsync(jobId);
        Assert.Equal((RunnerOutcome.Exited, 0), (runner!.Outcome, runner.ExitCode));
        AssertNothingLeft(jobId);
        var sent = await SentAsync(jobId);
        var stages = sent.OfType<RunnerProgress>().Select(p => p.Stage).ToList();
        Assert.Equal(["scheduled", "image_pulled", "running", "exited"], stages);
        Assert.Single(sent.OfType<RunnerDestroyed>());
    }

    [Fact]
    public async Task An_image_pull_failure_reaches_RunnerFinished_with_kubernetes_reason()
    {
        var jobId = Guid.NewGuid();
        await PublishAsync(new RunJob(jobId, "k8s", "acme/app", "main", 120, DateTimeOffset.UtcNow));
        var pod = await WaitForPodAsync(jobId);
        _fake.FailImagePull(pod.Metadata.Name, "ImagePullBackOff", "Back-off pulling image \"registry.example/eci-runner:1.0\"");

        await WaitForStateAsync(jobId, RunnerState.Destroyed);
        var finished = Assert.Single((await SentAsync(jobId)).OfType<RunnerFinished>());
        Assert.Equal(RunnerOutcome.FailedToStart, finished.Outcome);
        Assert.Contains("could not be pulled: ImagePullBackOff (Back-off pulling image \"registry.example/eci-runner:1.0\")", finished.Reason);
        AssertNothingLeft(jobId);
    }

    [Fact]
    public async Task Cancel_deletes_the_runner_at_once_with_its_secret()
    {
        var jobId = Guid.NewGuid();
        await PublishAsync(new RunJob(jobId, "k8s", "acme/app", "main", 120, DateTimeOffset.UtcNow));
        var pod = await WaitForPodAsync(jobId);
        _fake.StartPod(pod.Metadata.Name);
        await WaitForStateAsync(jobId, RunnerState.Running);

        await PublishAsync(new CancelJob(jobId, DateTimeOffset.UtcNow));

        await WaitForStateAsync(jobId, RunnerState.Destroyed);
        Assert.Equal(RunnerOutcome.Cancelled, (await RunnerAsync(jobId))!.Outcome);
        Assert.Equal("Foreground", _fake.JobDeletes.First(d => d.Name == RunnerLabels.JobName(jobId)).Propagation);
        AssertNothingLeft(jobId);
    }

    /// <summary>The runner's pod in the fake; on time-out, says where the runner got stuck.</summary>
    private async Task<k8s.Models.V1Pod> WaitForPodAsync(Guid jobId)
    {
        RunnerRecord? runner = null;
        await ProvisionerFixture.WaitUntilAsync(async () =>
        {
            runner = await RunnerAsync(jobId);
            return _fake.Pods(RunnerLabels.SelectorFor(jobId)).Count > 0;
        }, () => $"a pod for job {jobId}; runner row: {runner?.State} {runner?.Outcome} {runner?.Reason}");
        return _fake.Pods(RunnerLabels.SelectorFor(jobId))[0];
    }

    private void AssertNothingLeft(Guid jobId)
    {
        var selector = RunnerLabels.SelectorFor(jobId);
        Assert.Empty(_fake.Jobs(selector));
        Assert.Empty(_fake.Pods(selector));
        Assert.Empty(_fake.Secrets(selector));
    }

    private Task PublishAsync<T>(T message) where T : class => _host.Services.GetRequiredService<IBus>().Publish(message);

    private async Task<RunnerRecord?> RunnerAsync(Guid jobId)
    {
        await using var scope = _host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        return await db.Runners.AsNoTracking().FirstOrDefaultAsync(r => r.JobId == jobId);
    }

    private Task WaitForStateAsync(Guid jobId, RunnerState state) =>
        ProvisionerFixture.WaitUntilAsync(async () => (await RunnerAsync(jobId))?.State == state, $"runner of {jobId} to be {state}");

    private async Task<IReadOnlyList<object>> SentAsync(Guid jobId)
    {
        await using var scope = _host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        var rows = await db.OutboxMessages.AsNoTracking().OrderBy(m => m.Id).ToListAsync();
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        return rows.Where(r => r.Body.Contains(jobId.ToString()))
            .Select(r => JsonSerializer.Deserialize(r.Body, Type.GetType(r.MessageType)!, options)!).ToList();
    }
}
