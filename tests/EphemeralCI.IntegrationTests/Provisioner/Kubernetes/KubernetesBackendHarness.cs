using System.Collections.Concurrent;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Backends.Kubernetes;
using EphemeralCI.IntegrationTests.Fakes.FakeKubernetes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace EphemeralCI.IntegrationTests.Provisioner.Kubernetes;

/// <summary>The real backend and pod watcher, talking through the real KubernetesClient to the fake API server.</summary>
public sealed class KubernetesBackendHarness : IAsyncDisposable
{
    public const string IntakeUrl = "http://intake.ephemeralci.svc.cluster.local:8080";

    private KubernetesBackendHarness(FakeKubernetesApiServer fake, KubernetesConnection connection, KubernetesPodWatcher watcher, KubernetesRunnerBackend backend, RecordingProgressSink progress)
    {
        Fake = fake;
        Connection = connection;
        Watcher = watcher;
        Backend = backend;
        Progress = progress;
    }

    public FakeKubernetesApiServer Fake { get; }
    public KubernetesConnection Connection { get; }
    public KubernetesPodWatcher Watcher { get; }
    public KubernetesRunnerBackend Backend { get; }
    public RecordingProgressSink Progress { get; }

    public static async Task<KubernetesBackendHarness> StartAsync(TimeSpan? pendingGrace = null, string? ns = null, TimeSpan? scaleUpGrace = null, TimeSpan? deleteTimeout = null)
    {
        var fake = await FakeKubernetesApiServer.StartAsync();
        var options = new KubernetesOptions
        {
            ApiServer = fake.Address.ToString(),
            IntakeUrl = IntakeUrl,
            PendingGracePeriod = pendingGrace ?? TimeSpan.FromMinutes(5),
            ScaleUpGracePeriod = scaleUpGrace ?? TimeSpan.FromMinutes(10),
            DeleteTimeout = deleteTimeout ?? TimeSpan.FromSeconds(10),
        };
        if (ns is not null) options.Namespace = ns;
        var connection = new KubernetesConnection(Options.Create(options));
        var progress = new RecordingProgressSink();
        var watcher = new KubernetesPodWatcher(connection, progress, TimeProvider.System, NullLogger<KubernetesPodWatcher>.Instance);
        await watcher.StartAsync(CancellationToken.None);
        var backend = new KubernetesRunnerBackend(connection, watcher, TimeProvider.System, NullLogger<KubernetesRunnerBackend>.Instance);
        return new KubernetesBackendHarness(fake, connection, watcher, backend, progress);
    }

    public static RunnerLaunch Launch(Guid? jobId = null, Action<RunnerTemplateDefinition>? template = null, int timeoutSeconds = 600)
    {
        var definition = new RunnerTemplateDefinition
        {
            Backend = "kubernetes",
            Image = "registry.example/eci-runner:1.0",
            RunAsUser = 1001,
            Resources = new RunnerResources { CpuMillis = 500, MemoryMiB = 1024, MaxProcesses = 256 },
            Labels = { ["team"] = "platform" },
        };
        template?.Invoke(definition);
        var id = jobId ?? Guid.NewGuid();
        return new RunnerLaunch(id, $"runner-{id:N}", "linux-small", definition, "tok." + Guid.NewGuid().ToString("N"), DateTimeOffset.UtcNow.AddSeconds(timeoutSeconds));
    }

    public static RunnerRef Ref(RunnerLaunch launch) => new(launch.JobId, launch.RunnerId, null);

    public async ValueTask DisposeAsync()
    {
        await Watcher.StopAsync(CancellationToken.None);
        Watcher.Dispose();
        Connection.Dispose();
        await Fake.DisposeAsync();
    }
}

public sealed class RecordingProgressSink : IRunnerProgressSink
{
    private readonly ConcurrentQueue<RunnerProgress> _all = new();

    public IReadOnlyList<RunnerProgress> For(Guid jobId) => _all.Where(p => p.JobId == jobId).ToList();

    public Task ReportAsync(RunnerProgress progress, CancellationToken ct)
    {
        _all.Enqueue(progress);
        return Task.CompletedTask;
    }
}
