using MassTransit;
using EphemeralCI.Contracts.Runner;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using EphemeralCI.Intake.Auth;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.JobTokens;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;
using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>
/// The real Intake host (its Program) on a fresh Postgres database of its own, the real Redis,
/// and either the real RabbitMQ, an unreachable one, or MassTransit's in-memory transport.
/// </summary>
public class IntakeFactory : WebApplicationFactory<EphemeralCI.Intake.Host.IntakeHostEntryPoint>, IAsyncLifetime
{
    public string AdminKey { get; } = ApiKeySecret.Generate();
    public string DatabaseConnectionString { get; protected set; } = "";

    /// <summary>null: in-memory transport.</summary>
    protected virtual string? RabbitMqConnectionString => null;
    protected virtual long MaxLogBytesPerJob => 64L * 1024 * 1024;
    protected virtual string BootstrapAdminKey => AdminKey;
    /// <summary>
    /// Intake:DataProtection:KeyEncryptionKey. The same for every factory by default, as for the replicas of one deployment:
    /// tests start several intakes on one database (replicas, restarts), and each must open the key ring the first one made.
    /// </summary>
    public string DataProtectionKey { get; set; } = TestDataProtectionKey;

    public static readonly string TestDataProtectionKey = Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes("eci-integration-tests-kek-32byte"));

    public virtual async Task InitializeAsync()
    {
        await CreateDatabaseAsync();
        _ = Services; // start the host now: migrations and the bootstrap key
    }

    protected async Task CreateDatabaseAsync() => DatabaseConnectionString = await RealServices.CreateDatabaseAsync("intake");

    public new virtual Task DisposeAsync() => base.DisposeAsync().AsTask();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Development");
        builder.UseSetting("ConnectionStrings:intakedb", DatabaseConnectionString);
        builder.UseSetting("ConnectionStrings:redis", RealServices.Redis);
        builder.UseSetting("ConnectionStrings:rabbitmq", RabbitMqConnectionString ?? "");
        builder.UseSetting("JobTokens:SigningKey", Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        builder.UseSetting("Intake:BootstrapAdminKey", BootstrapAdminKey);
        builder.UseSetting("Intake:DataProtection:KeyEncryptionKey", DataProtectionKey);
        builder.UseSetting("Intake:MaxLogBytesPerJob", MaxLogBytesPerJob.ToString(System.Globalization.CultureInfo.InvariantCulture));
        builder.UseSetting("RunnerTemplates:default:MaxTimeoutSeconds", "3600");
        builder.UseSetting("RunnerTemplates:small:Backend", "local");
        builder.UseSetting("RunnerTemplates:small:DefaultTimeoutSeconds", "30");
        builder.UseSetting("RunnerTemplates:small:MaxTimeoutSeconds", "60");
    }

    public HttpClient ClientWithKey(string key)
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    public HttpClient AdminClient() => ClientWithKey(AdminKey);

    /// <summary>Creates a key bound to every repository (<c>**</c>, written out) through the admin API and returns a client that uses it.</summary>
    public Task<HttpClient> ClientWithScopesAsync(params string[] scopes) => ClientWithBindingsAsync(scopes, ["**"]);

    /// <summary>Creates a key with these scopes and bindings through the admin API and returns a client that uses it.</summary>
    public async Task<HttpClient> ClientWithBindingsAsync(
        string[] scopes, string[] repositories, string[]? refs = null, string[]? templates = null, string[]? environments = null) =>
        ClientWithKey(await CreateKeyAsync(scopes, repositories, refs, templates, environments));

    public async Task<string> CreateKeyAsync(
        string[] scopes, string[] repositories, string[]? refs = null, string[]? templates = null, string[]? environments = null)
    {
        using var admin = AdminClient();
        using var response = await admin.PostAsJsonAsync("/api/v1/api-keys",
            new { name = $"test-{Guid.NewGuid():N}", scopes, repositories, refs, templates, environments });
        response.EnsureSuccessStatusCode();
        var created = await response.Content.ReadFromJsonAsync<JsonElement>();
        return created.GetProperty("key").GetString()!;
    }

    public HttpClient RunnerClient(Guid jobId, string repository = "acme/widgets", int attempt = 1)
    {
        var token = Services.GetRequiredService<JobTokenService>().Issue(jobId, repository, "refs/heads/main", DateTimeOffset.UtcNow.AddHours(1), attempt);
        var client = ClientWithKey(token);
        // As the agent does: one random key per agent, sent on every call.
        client.DefaultRequestHeaders.Add(RunnerApiHeaders.AgentKey, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
        return client;
    }

    public async Task<T> WithDbAsync<T>(Func<IntakeDbContext, Task<T>> query)
    {
        await using var scope = Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<IntakeDbContext>();
        return await query(db);
    }

    /// <summary>Polls until <paramref name="condition"/> holds; fails after a generous bound (not a timing assertion).</summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, string what, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting for: {what}");
            await Task.Delay(100);
        }
    }

    /// <summary>Publishes <paramref name="message"/> on the intake's bus (as the provisioner would) and waits until it was consumed.</summary>
    public async Task DeliverAsync<T>(T message, Guid? messageId = null) where T : class
    {
        var bus = Services.GetRequiredService<IBus>();
        var counter = new ConsumeCounter();
        using var _ = bus.ConnectConsumeObserver(counter);
        var id = messageId ?? Guid.NewGuid();
        await bus.Publish(message, ctx => ctx.MessageId = id);
        await EventuallyAsync(() => Task.FromResult(counter.Count(id) >= 1), $"{typeof(T).Name} consumed");
    }

    public Task<int> CountEventsAsync(Guid jobId, string type) =>
        WithDbAsync(db => db.JobEvents.CountAsync(e => e.JobId == jobId && e.Type == type));
}

public sealed class RabbitMqIntakeFactory : IntakeFactory
{
    /// <summary>A virtual host of this factory's own, shared with the test's probe bus.</summary>
    public string VirtualHost { get; } = RealServices.CreateRabbitMqVirtualHostAsync("intake").GetAwaiter().GetResult();

    protected override string? RabbitMqConnectionString => VirtualHost;

    /// <summary>Every span the host's tracer provider ended, sampled for export (<c>Recorded</c>) or not.</summary>
    public SpanCollector Spans { get; } = new();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.ConfigureServices(services => services.ConfigureOpenTelemetryTracerProvider(t => t.AddProcessor(Spans)));
    }

    /// <summary>A bus of its own on this factory's virtual host, started, as another process (the provisioner) has one.</summary>
    public async Task<IBusControl> StartBusAsync(Action<IRabbitMqBusFactoryConfigurator>? configure = null)
    {
        var uri = new Uri(VirtualHost);
        var bus = Bus.Factory.CreateUsingRabbitMq(cfg =>
        {
            cfg.Host(uri, h =>
            {
                var user = uri.UserInfo.Split(':', 2);
                if (user.Length == 2) { h.Username(Uri.UnescapeDataString(user[0])); h.Password(Uri.UnescapeDataString(user[1])); }
            });
            configure?.Invoke(cfg);
        });
        await bus.StartAsync();
        return bus;
    }
}

/// <summary>Collects ended spans (a processor sees those only recorded too; the exporter gets the sampled ones).</summary>
public sealed class SpanCollector : OpenTelemetry.BaseProcessor<System.Diagnostics.Activity>
{
    public System.Collections.Concurrent.ConcurrentQueue<System.Diagnostics.Activity> Ended { get; } = new();

    public override void OnEnd(System.Diagnostics.Activity data) => Ended.Enqueue(data);
}

/// <summary>A fresh virtual host where no provisioner has ever declared its queue.</summary>
public sealed class NoConsumerYetIntakeFactory : IntakeFactory
{
    public string VirtualHost { get; } = RealServices.CreateRabbitMqVirtualHostAsync("noconsumer").GetAwaiter().GetResult();

    protected override string? RabbitMqConnectionString => VirtualHost;
}

/// <summary>RabbitMQ configured but nothing listening: the broker is "down".</summary>
public sealed class UnreachableRabbitMqIntakeFactory : IntakeFactory
{
    protected override string? RabbitMqConnectionString => "amqp://guest:guest@127.0.0.1:1/";
}

/// <summary>A bootstrap key that is not shaped like one of ours: start-up must refuse it.</summary>
public sealed class BadBootstrapKeyIntakeFactory : IntakeFactory
{
    protected override string BootstrapAdminKey => "changeme";

    public override Task InitializeAsync() => CreateDatabaseAsync(); // the test starts the host itself
}

public sealed class SmallLogCapIntakeFactory : IntakeFactory
{
    protected override long MaxLogBytesPerJob => 64;
}

/// <summary>Builders for request bodies.</summary>
public static class Jobs
{
    public const string Sha = "0123456789abcdef0123456789abcdef01234567";

    public static object Valid(string repository = "acme/widgets", string template = "default", int? timeoutSeconds = null, string name = "build") => new
    {
        name,
        repository,
        @ref = "refs/heads/main",
        commitSha = Sha,
        runnerTemplate = template,
        steps = new object[] { new { name = "one", run = "echo one" }, new { name = "two", run = "echo two", env = new Dictionary<string, string> { ["GREETING"] = "hi" } } },
        env = new Dictionary<string, string> { ["CI"] = "true" },
        timeoutSeconds,
        secrets = new[] { "NPM_TOKEN" },
        caches = new object[] { new { key = "npm-abc", restoreKeys = new[] { "npm-" }, paths = new[] { "node_modules" } } },
    };

    public static async Task<Guid> SubmitAsync(HttpClient client, object? body = null)
    {
        using var response = await client.PostAsJsonAsync("/api/v1/jobs", body ?? Valid());
        Assert.Equal(System.Net.HttpStatusCode.Accepted, response.StatusCode);
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
        return accepted.GetProperty("id").GetGuid();
    }
}
