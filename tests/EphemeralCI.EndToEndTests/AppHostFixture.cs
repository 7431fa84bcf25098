using System.Net.Http.Headers;
using System.Security.Cryptography;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// Starts the real AppHost once, in external-services mode, against the Postgres, Redis, RabbitMQ
/// and S3 emulator from eng/services.sh, each service on a fresh database. A subclass may change the
/// topology's settings before it starts (<see cref="Configure"/>) and gets an AppHost of its own.
/// </summary>
public class AppHostFixture : IEphemeralCISystem, IAsyncLifetime
{
    public const string AdminKey = "eci_e2e_bootstrap_admin_key_0123456789abcdefghijklmnop";
    public static readonly string SecretsAdminToken = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
    public static readonly string CacheAdminToken = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));

    /// <summary>A template with a warm pool of one sandbox, known to the provisioner only.</summary>
    public const string WarmTemplate = "e2e-warm";

    private DistributedApplication? _app;

    /// <summary>Where the provisioner puts each runner's workspace and control socket.</summary>
    public string RunnerWorkRoot { get; } = Path.Combine(Path.GetTempPath(), "eci-e2e-runners-" + Guid.NewGuid().ToString("N")[..8]);

    public HttpClient Intake { get; private set; } = null!;

    /// <summary>The secrets broker's admin API, with its admin token.</summary>
    public HttpClient SecretsAdmin { get; private set; } = null!;

    public DistributedApplication App => _app ?? throw new InvalidOperationException("not started");

    /// <summary>The provisioner's database (its runner table and outbox), for a test that looks behind the APIs.</summary>
    public string ProvisionerDb { get; private set; } = "";

    /// <summary>Called before the AppHost is built: a subclass's settings for the services.</summary>
    protected virtual void Configure(IDistributedApplicationTestingBuilder builder) { }

    public virtual async Task InitializeAsync()
    {
        string[] args =
        [
            "--Infrastructure:Mode=External",
            $"--ConnectionStrings:intakedb={await RealServices.CreateDatabaseAsync("e2e_intake")}",
            $"--ConnectionStrings:provisionerdb={ProvisionerDb = await RealServices.CreateDatabaseAsync("e2e_prov")}",
            $"--ConnectionStrings:secretsdb={await RealServices.CreateDatabaseAsync("e2e_secrets")}",
            $"--ConnectionStrings:cachedb={await RealServices.CreateDatabaseAsync("e2e_cache")}",
            $"--ConnectionStrings:redis={RealServices.Redis}",
            $"--ConnectionStrings:rabbitmq={await RealServices.CreateRabbitMqVirtualHostAsync("e2e")}",
            $"--ConnectionStrings:minio={RealServices.S3}",
            $"--Parameters:job-token-signing-key={Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))}",
            $"--EphemeralCI:BootstrapAdminKey={AdminKey}",
            $"--Parameters:secrets-admin-token={SecretsAdminToken}",
            $"--Parameters:cache-admin-token={CacheAdminToken}",
        ];
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.EphemeralCI_AppHost>(
            args, (options, _) => options.DisableDashboard = true);
        builder.Services.AddLogging(logging => logging.SetMinimumLevel(LogLevel.Information));
        Directory.CreateDirectory(RunnerWorkRoot);
        builder.CreateResourceBuilder<ProjectResource>("provisioner")
            .WithEnvironment("Provisioner__LocalSandbox__WorkRoot", RunnerWorkRoot)
            // Its own cgroup parent: provisioners of the integration tests may run on this machine too.
            .WithEnvironment("Provisioner__LocalSandbox__CgroupName", "eci-e2e-" + Guid.NewGuid().ToString("N")[..8])
            // A template of the provisioner's alone, no job uses it: one idle sandbox, for the intake's Runners page (WarmPoolPageTests).
            .WithEnvironment($"RunnerTemplates__{WarmTemplate}__WarmPool", "1");
        Configure(builder);

        _app = await builder.BuildAsync();
        using var startup = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        await _app.StartAsync(startup.Token);
        foreach (var service in new[] { "intake", "provisioner", "secrets-broker", "cache" })
        {
            await _app.ResourceNotifications.WaitForResourceHealthyAsync(service, startup.Token);
        }

        Intake = _app.CreateHttpClient("intake");
        Intake.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        SecretsAdmin = _app.CreateHttpClient("secrets-broker");
        SecretsAdmin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", SecretsAdminToken);
    }

    public virtual async Task DisposeAsync()
    {
        Intake?.Dispose();
        SecretsAdmin?.Dispose();
        if (_app is not null) await _app.DisposeAsync();
        try { Directory.Delete(RunnerWorkRoot, recursive: true); } catch (DirectoryNotFoundException) { }
    }
}

[CollectionDefinition(Name)]
public sealed class AppHostCollection : ICollectionFixture<AppHostFixture>
{
    public const string Name = "apphost";
}
