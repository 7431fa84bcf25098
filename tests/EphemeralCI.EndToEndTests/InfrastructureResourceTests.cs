using System.Security.Cryptography;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// Issue 21 item 3: in External mode the backing services are dashboard resources with real health checks — every one
/// healthy on a working installation, and one that is down shows unhealthy while the services that need it wait.
/// </summary>
[Collection(AppHostCollection.Name)]
public sealed class InfrastructureResourcesOnAppHost(AppHostFixture fx)
{
    public static readonly string[] Resources = ["intakedb", "provisionerdb", "secretsdb", "cachedb", "redis", "rabbitmq", "minio"];

    [Fact]
    public async Task Every_backing_service_is_a_resource_reported_healthy()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        foreach (var name in Resources)
        {
            var state = await fx.App.ResourceNotifications.WaitForResourceHealthyAsync(name, timeout.Token);
            Assert.Equal(HealthStatus.Healthy, state.Snapshot.HealthStatus);
            Assert.Contains(state.Snapshot.HealthReports, r => r.Name == $"{name}-reachable" && r.Status == HealthStatus.Healthy);
        }
    }
}

public sealed class InfrastructureResourceDownTests
{
    [Fact]
    public async Task A_broker_that_is_down_shows_unhealthy_and_the_services_that_need_it_wait()
    {
        string[] args =
        [
            "--Infrastructure:Mode=External",
            $"--ConnectionStrings:intakedb={await RealServices.CreateDatabaseAsync("e2e_down_intake")}",
            $"--ConnectionStrings:provisionerdb={await RealServices.CreateDatabaseAsync("e2e_down_prov")}",
            $"--ConnectionStrings:secretsdb={await RealServices.CreateDatabaseAsync("e2e_down_secrets")}",
            $"--ConnectionStrings:cachedb={await RealServices.CreateDatabaseAsync("e2e_down_cache")}",
            $"--ConnectionStrings:redis={RealServices.Redis}",
            // Nothing listens there.
            $"--ConnectionStrings:rabbitmq=amqp://guest:guest@127.0.0.1:{FreePort.Next()}/",
            $"--ConnectionStrings:minio={RealServices.S3}",
            $"--Parameters:job-token-signing-key={Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))}",
        ];
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.EphemeralCI_AppHost>(args, (options, _) => options.DisableDashboard = true);
        await using var app = await builder.BuildAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        // Start does not return while a resource waits on another: watch it from here, then stop it.
        using var stop = new CancellationTokenSource();
        var starting = app.StartAsync(stop.Token);

        var redis = await app.ResourceNotifications.WaitForResourceHealthyAsync("redis", timeout.Token);
        Assert.Equal(HealthStatus.Healthy, redis.Snapshot.HealthStatus);
        var rabbit = await app.ResourceNotifications.WaitForResourceAsync("rabbitmq",
            e => e.Snapshot.HealthReports.Any(r => r.Name == "rabbitmq-reachable" && r.Status == HealthStatus.Unhealthy), timeout.Token);
        Assert.NotEqual(HealthStatus.Healthy, rabbit.Snapshot.HealthStatus);
        // The intake needs the broker: it is held back, not started to crash.
        await app.ResourceNotifications.WaitForResourceAsync("intake", KnownResourceStates.Waiting, timeout.Token);
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.True(app.Services.GetRequiredService<ResourceNotificationService>().TryGetCurrentState("intake", out var state));
        Assert.Equal(KnownResourceStates.Waiting, state!.Snapshot.State?.Text);
        await stop.CancelAsync();
        try { await starting; } catch (OperationCanceledException) { }
    }
}
