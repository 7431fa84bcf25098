using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using EphemeralCI.JobTokens;
using EphemeralCI.SecretsBroker;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.IntegrationTests.SecretsBroker;

/// <summary>
/// The secrets broker module composed into a bare WebApplication (as the all-in-one server will
/// compose it) on a fresh Postgres database and the real Redis, with the in-memory bus, and every
/// log line it writes captured so tests can prove no secret value reaches the logs.
/// </summary>
internal sealed class BrokerTestApp : IAsyncDisposable
{
    public const string AdminToken = "admin-token-for-tests-0123456789abcdef";
    public const string ProvisionerToken = "provisioner-token-for-tests-0123456789";

    public required WebApplication App { get; init; }
    public required HttpClient Client { get; init; }
    public required string ConnectionString { get; init; }
    public required CapturedLogs Logs { get; init; }

    public static string NewKek() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <param name="keks">Key-encryption keys by id; the first is active unless <paramref name="activeKeyId"/> says otherwise.</param>
    public static async Task<BrokerTestApp> StartAsync(
        string? connectionString = null, IReadOnlyDictionary<string, string>? keks = null, string? activeKeyId = null,
        bool withRedis = true, IDictionary<string, string?>? extra = null, bool overKestrel = false, TimeProvider? clock = null, string? urls = null)
    {
        connectionString ??= await RealServices.CreateDatabaseAsync("secrets");
        keks ??= new Dictionary<string, string> { ["k1"] = NewKek() };
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing", ContentRootPath = AppContext.BaseDirectory });
        if (overKestrel) builder.WebHost.UseUrls(urls ?? "http://127.0.0.1:0"); // for other processes (the runner agent)
        else builder.WebHost.UseTestServer();
        var settings = new Dictionary<string, string?>
        {
            ["ConnectionStrings:secretsdb"] = connectionString,
            ["ConnectionStrings:redis"] = withRedis ? RealServices.Redis : null,
            ["SecretsBroker:ActiveKeyId"] = activeKeyId ?? keks.Keys.First(),
            ["SecretsBroker:AdminToken"] = AdminToken,
            ["SecretsBroker:ProvisionerToken"] = ProvisionerToken,
        };
        foreach (var (id, key) in keks) settings[$"SecretsBroker:KeyEncryptionKeys:{id}"] = key;
        if (extra is not null) foreach (var (k, v) in extra) settings[k] = v;
        builder.Configuration.AddInMemoryCollection(settings);
        var logs = new CapturedLogs();
        builder.Logging.AddProvider(logs);
        builder.Logging.SetMinimumLevel(LogLevel.Trace);
        if (clock is not null) builder.Services.AddSingleton(clock);
        builder.AddSecretsBroker();
        var app = builder.Build();
        app.MapHealthChecks("/health");
        app.MapSecretsBroker();
        await app.StartAsync();
        var client = overKestrel
            ? new HttpClient { BaseAddress = new Uri(app.Urls.First()) }
            : app.GetTestClient();
        return new BrokerTestApp { App = app, Client = client, ConnectionString = connectionString, Logs = logs };
    }

    public T Service<T>() where T : notnull => App.Services.GetRequiredService<T>();

    public HttpRequestMessage Admin(HttpMethod method, string path, object? body = null)
    {
        var request = new HttpRequestMessage(method, path) { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", AdminToken) } };
        if (body is not null) request.Content = JsonContent.Create(body);
        return request;
    }

    public async Task PutSecretAsync(string name, string? value, string[] repositories, string[] refs, string? environment = null)
    {
        using var response = await Client.SendAsync(Admin(HttpMethod.Put, $"/api/v1/admin/secrets/{name}",
            new { value, repositories, refs, environment }));
        response.EnsureSuccessStatusCode();
    }

    /// <summary>Mints through the HTTP endpoint, exactly as the provisioner does.</summary>
    public async Task<string> MintAsync(Guid jobId, string repository = "acme/widgets", string gitRef = "refs/heads/main",
        DateTimeOffset? deadline = null, string? environment = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/internal/v1/job-tokens")
        {
            Headers = { Authorization = new AuthenticationHeaderValue("Bearer", ProvisionerToken) },
            Content = JsonContent.Create(new JobTokenRequest(jobId, repository, gitRef, deadline ?? DateTimeOffset.UtcNow.AddMinutes(10),
                "0123456789abcdef0123456789abcdef01234567", "default", environment)),
        };
        using var response = await Client.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<MintedJobToken>())!.Token;
    }

    public Task<HttpResponseMessage> ExchangeAsync(string token, params string[] secrets)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/secrets/exchange")
        {
            Headers = { Authorization = new AuthenticationHeaderValue("Bearer", token) },
            Content = JsonContent.Create(new { secrets }),
        };
        return Client.SendAsync(request);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.DisposeAsync();
    }
}

/// <summary>The system clock, moved forward on demand (rotation schedules without waiting).</summary>
internal sealed class ShiftedClock : TimeProvider
{
    public TimeSpan Offset { get; set; }
    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + Offset;
}

/// <summary>Every formatted log message and exception text of the app under test.</summary>
internal sealed class CapturedLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();
    public IEnumerable<string> Lines => _lines;
    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);
    public void Dispose() { }

    private sealed class Logger(CapturedLogs owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner._lines.Enqueue($"{category}: {formatter(state, exception)} {exception}");
    }
}
