using System.Security.Cryptography;
using System.Text.Json;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Messaging;
using EphemeralCI.Provisioner;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.IntegrationTests.Infrastructure;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>
/// One provisioner module on real Postgres (a fresh database), real RabbitMQ and real bubblewrap,
/// with a <see cref="FakeIntake"/> as the far end of the control-plane relay.
/// </summary>
public class ProvisionerFixture : IAsyncLifetime
{
    private readonly string _signingKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
    private IHost? _host;
    private readonly RunJobObserver _observer = new();

    public FakeIntake Intake { get; private set; } = null!;
    public IHost Host => _host!;
    public string WorkRoot { get; } = Path.Combine(Path.GetTempPath(), "eci-prov-tests", Guid.NewGuid().ToString("N")[..8]);

    /// <summary>A small base root for the overlay template: a few /etc files, the host's /usr bound read-only, the merged-/usr links.</summary>
    public string BaseRoot { get; } = Path.Combine(Path.GetTempPath(), "eci-prov-base", Guid.NewGuid().ToString("N")[..8]);
    public const string OverlayTemplate = "overlay";
    public const string BaseMarker = "eci-base-marker";

    private void CreateBaseRoot()
    {
        Directory.CreateDirectory(Path.Combine(BaseRoot, "etc"));
        foreach (var file in new[] { "passwd", "group", "nsswitch.conf", "hosts", "ld.so.cache" })
        {
            File.Copy($"/etc/{file}", Path.Combine(BaseRoot, "etc", file));
        }
        File.WriteAllText(Path.Combine(BaseRoot, "etc", BaseMarker), "from-the-base\n");
        Directory.CreateDirectory(Path.Combine(BaseRoot, "usr"));
        foreach (var link in new[] { "bin", "sbin", "lib", "lib64" })
        {
            if (new FileInfo("/" + link).LinkTarget is { } target) File.CreateSymbolicLink(Path.Combine(BaseRoot, link), target);
        }
        // Read-only, so nothing (not even a careless rm -rf of the temp folder) can write through to the host's /usr.
        Run("mount", "--bind", "-o", "ro", "/usr", Path.Combine(BaseRoot, "usr"));
        Run("mount", "-o", "remount,bind,ro", Path.Combine(BaseRoot, "usr"));
    }

    private static void Run(string file, params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(file) { RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)}: {error}");
    }

    public async Task InitializeAsync()
    {
        CreateBaseRoot();
        Intake = await FakeIntake.StartAsync(_signingKey);
        var database = await RealServices.CreateDatabaseAsync("prov");
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:provisionerdb"] = database,
            ["ConnectionStrings:rabbitmq"] = await RealServices.CreateRabbitMqVirtualHostAsync("prov"),
            ["JobTokens:SigningKey"] = _signingKey,
            ["Provisioner:IntakeUrl"] = Intake.Address.ToString(),
            ["Provisioner:LocalSandbox:WorkRoot"] = WorkRoot,
            // Several provisioners run on this machine at once (fixtures, the end-to-end AppHost): each
            // needs its own cgroup parent, or one's reconciler kills the others' runners as leftovers.
            ["Provisioner:LocalSandbox:CgroupName"] = "eci-test-" + Guid.NewGuid().ToString("N")[..8],
            // Tests run reconciler passes themselves, so a timer tick never races a test's setup.
            ["Provisioner:Reconciler:IntervalSeconds"] = "0",
            [$"Provisioner:Limits:Repositories:{LimitedRepository}"] = "1",
            ["RunnerTemplates:default:Backend"] = "local",
            ["RunnerTemplates:default:DefaultTimeoutSeconds"] = "120",
            ["RunnerTemplates:default:MaxTimeoutSeconds"] = "300",
            // Small limits for hostile jobs; the agent (a .NET process, ~20 threads) fits well inside.
            [$"RunnerTemplates:{TightTemplate}:Backend"] = "local",
            [$"RunnerTemplates:{TightTemplate}:DefaultTimeoutSeconds"] = "60",
            [$"RunnerTemplates:{TightTemplate}:MaxTimeoutSeconds"] = "120",
            [$"RunnerTemplates:{TightTemplate}:Resources:MemoryMiB"] = "256",
            [$"RunnerTemplates:{TightTemplate}:Resources:MaxProcesses"] = "128",
            [$"RunnerTemplates:{TightTemplate}:Resources:CpuMillis"] = "500",
            [$"RunnerTemplates:{OverlayTemplate}:Backend"] = "local",
            [$"RunnerTemplates:{OverlayTemplate}:RootFilesystem"] = BaseRoot,
            [$"RunnerTemplates:{NoNetworkTemplate}:Network"] = "none",
            [$"RunnerTemplates:{EgressTemplate}:Network"] = "egress",
            [$"RunnerTemplates:{WarmTemplate}:WarmPool"] = "1",
            // A pool no other provisioner on this machine uses (the default is 10.213.0.0/16).
            ["Provisioner:LocalSandbox:EgressAddressPool"] = $"10.214.{Random.Shared.Next(0, 64) * 4}.0/22",
            [$"RunnerTemplates:{RootlessTemplate}:Sandbox:AllowUserNamespaces"] = "true",
        });
        builder.Configuration.AddInMemoryCollection(ExtraSettings);
        builder.AddProvisioner();
        _host = builder.Build();
        await _host.StartAsync();
        // The bus starts in the background; a RunJob published before the provisioner's queue is
        // bound in this fresh virtual host would be dropped by RabbitMQ.
        await _host.Services.GetRequiredService<IBusControl>().WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(60));
        _host.Services.GetRequiredService<IBus>().ConnectConsumeObserver(_observer);
    }

    /// <summary>Settings a derived fixture adds (later wins).</summary>
    protected virtual IEnumerable<KeyValuePair<string, string?>> ExtraSettings => [];

    public const string TightTemplate = "tight";
    /// <summary>sandbox.allowUserNamespaces: true (rootless container builds).</summary>
    public const string RootlessTemplate = "rootless";
    public const string NoNetworkTemplate = "isolated";
    public const string EgressTemplate = "egress";
    public const string WarmTemplate = "warm";
    /// <summary>A repository limited to one runner at a time.</summary>
    public const string LimitedRepository = "acme/limited";

    public RunJob RunJob(Guid jobId, int timeoutSeconds = 120, string template = "default") =>
        new(jobId, template, "acme/app", "main", timeoutSeconds, DateTimeOffset.UtcNow);

    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public LocalSandboxBackend Sandbox => Host.Services.GetRequiredService<LocalSandboxBackend>();

    public Task PublishAsync<T>(T message) where T : class => Host.Services.GetRequiredService<IBus>().Publish(message);

    /// <summary>How many messages of type <typeparamref name="T"/> for the job the provisioner has finished consuming.</summary>
    public int Consumed<T>(Guid jobId) => _observer.Count(typeof(T), jobId);

    /// <summary>Every consumer fault so far, for failure messages.</summary>
    public string Faults => string.Join("\n", _observer.Faults);

    public async Task<RunnerRecord?> RunnerAsync(Guid jobId)
    {
        await using var scope = Host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        return await db.Runners.AsNoTracking().FirstOrDefaultAsync(r => r.JobId == jobId);
    }

    /// <summary>The messages the provisioner queued for this job, in order, from its outbox.</summary>
    public async Task<IReadOnlyList<object>> SentAsync(Guid jobId)
    {
        await using var scope = Host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        var rows = await db.OutboxMessages.AsNoTracking().OrderBy(m => m.Id).ToListAsync();
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        return rows
            .Where(r => r.Body.Contains(jobId.ToString()))
            .Select(r => JsonSerializer.Deserialize(r.Body, Type.GetType(r.MessageType)!, options)!)
            .ToList();
    }

    /// <summary>Polls until <paramref name="condition"/> holds; fails with <paramref name="what"/> after a generous limit.</summary>
    public static Task WaitUntilAsync(Func<Task<bool>> condition, string what, int seconds = 90) =>
        WaitUntilAsync(condition, () => what, seconds);

    /// <summary>Like the other overload; <paramref name="what"/> is evaluated on failure, to show the state then.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, Func<string> what, int seconds = 90)
    {
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        while (!await condition())
        {
            if (limit.IsCancellationRequested) throw new TimeoutException($"gave up waiting: {what()}");
            await Task.Delay(50);
        }
    }

    public Task WaitForStateAsync(Guid jobId, RunnerState state) =>
        WaitUntilAsync(async () => (await RunnerAsync(jobId))?.State == state, $"runner of {jobId} to be {state}");

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.StopAsync();
            _host.Dispose();
        }
        await Intake.DisposeAsync();
        try { Directory.Delete(WorkRoot, recursive: true); } catch (DirectoryNotFoundException) { }
        Run("umount", Path.Combine(BaseRoot, "usr"));
        Directory.Delete(BaseRoot, recursive: true);
    }

    private sealed class RunJobObserver : IConsumeObserver
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<(Type, Guid), int> _counts = new();
        public int Count(Type type, Guid jobId) => _counts.GetValueOrDefault((type, jobId));
        public Task PreConsume<T>(ConsumeContext<T> context) where T : class => Task.CompletedTask;
        public Task PostConsume<T>(ConsumeContext<T> context) where T : class
        {
            Guid? jobId = context.Message switch { RunJob r => r.JobId, CancelJob c => c.JobId, _ => null };
            if (jobId is { } id) _counts.AddOrUpdate((typeof(T), id), 1, (_, n) => n + 1);
            return Task.CompletedTask;
        }
        public System.Collections.Concurrent.ConcurrentQueue<string> Faults { get; } = new();
        public Task ConsumeFault<T>(ConsumeContext<T> context, Exception exception) where T : class
        {
            Faults.Enqueue($"{typeof(T).Name}: {exception}");
            return Task.CompletedTask;
        }
    }
}

[CollectionDefinition(Name)]
public sealed class ProvisionerCollection : ICollectionFixture<ProvisionerFixture>
{
    public const string Name = "provisioner";
}

/// <summary>The same provisioner running the managed agent (on the shared .NET runtime), whose runtime has a diagnostics server to keep steps away from.</summary>
public sealed class ManagedAgentProvisionerFixture : ProvisionerFixture
{
    protected override IEnumerable<KeyValuePair<string, string?>> ExtraSettings => [new("Provisioner:LocalSandbox:ManagedAgent", "true")];
}

[CollectionDefinition(Name)]
public sealed class ManagedAgentProvisionerCollection : ICollectionFixture<ManagedAgentProvisionerFixture>
{
    public const string Name = "provisioner-managed-agent";
}
