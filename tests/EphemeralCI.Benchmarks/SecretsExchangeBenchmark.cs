using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using EphemeralCI.JobTokens;
using EphemeralCI.SecretsBroker;
using EphemeralCI.SecretsBroker.Identity;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace EphemeralCI.Benchmarks;

/// <summary>
/// Secret exchange over HTTP (Kestrel on loopback) against real Postgres and Redis. Baseline: an
/// exchange that asks for no secret, i.e. what the foundation's exchange did (check the token, mark
/// it used) plus the revocation check and the audit line; then 1 and 5 secrets (policy, unwrap, decrypt).
/// A second table compares ES256 (broker) with HS256 (interim) token validation in process.
/// </summary>
public sealed class SecretsExchangeBenchmark : IBenchmark
{
    public string Name => "secrets-exchange";

    public async Task<string> RunAsync(BenchmarkOptions options)
    {
        var postgres = Environment.GetEnvironmentVariable("ECI_POSTGRES") ?? throw new InvalidOperationException("ECI_POSTGRES is not set: eval \"$(eng/services.sh env)\"");
        var redis = Environment.GetEnvironmentVariable("ECI_REDIS") ?? throw new InvalidOperationException("ECI_REDIS is not set");
        var database = await CreateDatabaseAsync(postgres);

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:secretsdb"] = database,
            ["ConnectionStrings:redis"] = redis,
            ["SecretsBroker:KeyEncryptionKeys:bench"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
            ["SecretsBroker:ActiveKeyId"] = "bench",
            ["SecretsBroker:AdminToken"] = "benchmark-admin-token-0123456789",
        });
        builder.AddSecretsBroker();
        await using var app = builder.Build();
        app.MapSecretsBroker();
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };

        string[] names = ["S1", "S2", "S3", "S4", "S5"];
        foreach (var name in names)
        {
            using var put = new HttpRequestMessage(HttpMethod.Put, $"/api/v1/admin/secrets/{name}")
            {
                Headers = { Authorization = new AuthenticationHeaderValue("Bearer", "benchmark-admin-token-0123456789") },
                Content = JsonContent.Create(new { value = $"value-of-{name}-" + new string('x', 40), repositories = new[] { "acme/*" }, refs = new[] { "refs/heads/main" } }),
            };
            (await http.SendAsync(put)).EnsureSuccessStatusCode();
        }

        var issuer = app.Services.GetRequiredService<JobIdentityIssuer>();
        async Task<string[]> MintAsync(int n)
        {
            var tokens = new string[n];
            for (var i = 0; i < n; i++)
            {
                tokens[i] = (await issuer.MintAsync(new JobTokenRequest(Guid.NewGuid(), "acme/widgets", "refs/heads/main", DateTimeOffset.UtcNow.AddHours(1)), "benchmark", default)).Token;
            }
            return tokens;
        }

        async Task<(string, Func<int, Task>)> ExchangeScenario(string title, string[] requested)
        {
            foreach (var t in await MintAsync(20)) await ExchangeAsync(http, t, requested); // warm-up
            var tokens = await MintAsync(2 * options.Count); // one fresh token per exchange
            return (title, i => ExchangeAsync(http, tokens[i], requested));
        }

        var exchange = await ScenarioResult.MeasureInterleavedAsync(
        [
            await ExchangeScenario("baseline: exchange, no secret requested", []),
            await ExchangeScenario("exchange, 1 secret", names[..1]),
            await ExchangeScenario("exchange, 5 secrets", names),
        ], options.Count, options.Concurrency);

        // Validation only, in process: ES256 against the broker's key ring vs the interim HS256.
        var es256 = app.Services.GetRequiredService<JobTokenService>();
        var esToken = (await MintAsync(1))[0];
        var hs256 = new JobTokenService(Options.Create(new JobTokenOptions { SigningKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)) }), TimeProvider.System);
        var hsToken = hs256.Issue(Guid.NewGuid(), "acme/widgets", "refs/heads/main", DateTimeOffset.UtcNow.AddHours(1));
        var validationCount = options.Count * 4;
        var validation = await ScenarioResult.MeasureInterleavedAsync(
        [
            ("baseline: HS256 validation (interim token)", async _ => Check(await hs256.ValidateAsync(hsToken))),
            ("ES256 validation (broker token)", async _ => Check(await es256.ValidateAsync(esToken))),
        ], validationCount, options.Concurrency);

        var report = new StringBuilder();
        report.AppendLine("## Secrets broker: token exchange");
        report.AppendLine();
        report.AppendLine($"Measured {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores ({System.Runtime.InteropServices.RuntimeInformation.OSDescription}), " +
            "broker in process over HTTP on loopback, real Postgres and Redis from `eng/services.sh`. Latency: one request at a time, " +
            $"the scenarios' samples taken in turn so load changes hit all alike (machine load average at start: {LoadAverage()}); " +
            $"throughput: {options.Concurrency} concurrent clients, one scenario after the other. Every exchange spends a fresh token (single-use mark in Redis, audit line in Postgres).");
        report.AppendLine();
        report.AppendLine(ScenarioResult.Header);
        foreach (var r in exchange) report.AppendLine(r.Row());
        report.AppendLine();
        report.AppendLine("Token validation alone (no HTTP, no storage):");
        report.AppendLine();
        report.AppendLine(ScenarioResult.Header);
        foreach (var r in validation) report.AppendLine(r.Row());
        report.AppendLine();
        report.AppendLine("Reading: the gap between the baseline and the secret rows is the cost of policy evaluation, one Postgres read per secret and AES-GCM unwrap + decrypt; " +
            "the validation table shows what moving from the shared HS256 key to published ES256 keys costs per request.");
        return report.ToString();
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "n/a";

    private static void Check(JobTokenClaims? claims)
    {
        if (claims is null) throw new InvalidOperationException("a benchmark token did not validate");
    }

    private static async Task ExchangeAsync(HttpClient http, string token, string[] requested)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/secrets/exchange")
        {
            Headers = { Authorization = new AuthenticationHeaderValue("Bearer", token) },
            Content = JsonContent.Create(new { secrets = requested }),
        };
        using var response = await http.SendAsync(request);
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"exchange failed: HTTP {(int)response.StatusCode}");
        await response.Content.ReadAsByteArrayAsync();
    }

    private static async Task<string> CreateDatabaseAsync(string server)
    {
        var name = $"eci_bench_secrets_{Guid.NewGuid():N}"[..40];
        await using var conn = new NpgsqlConnection(server);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\" TEMPLATE template0", conn);
        await cmd.ExecuteNonQueryAsync();
        return new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
    }
}
