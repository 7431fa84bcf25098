using EphemeralCI.Cache;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EphemeralCI.Benchmarks;

/// <summary>
/// The cache module composed as <c>EphemeralCI.Cache.Host</c> composes it (service defaults + AddCache), on real
/// Kestrel on loopback, against the real Postgres, Redis and S3 emulator of <c>eng/services.sh</c>: what the cache
/// benchmarks measure. Each benchmark gets its own database and bucket (left behind, as the other benchmarks leave theirs).
/// </summary>
internal sealed class CacheBenchHost
{
    public CacheBenchHost()
    {
        Postgres = Environment.GetEnvironmentVariable("ECI_POSTGRES") ?? throw new InvalidOperationException("ECI_POSTGRES is not set: eval \"$(eng/services.sh env)\"");
        Redis = Environment.GetEnvironmentVariable("ECI_REDIS") ?? throw new InvalidOperationException("ECI_REDIS is not set");
        S3 = Environment.GetEnvironmentVariable("ECI_S3") ?? throw new InvalidOperationException("ECI_S3 is not set");
    }

    public string Postgres { get; }
    public string Redis { get; }
    public string S3 { get; }
    public string Bucket { get; } = $"eci-bench-{Guid.NewGuid():N}";
    /// <summary>Shared by every instance started here, so one job token works against all of them.</summary>
    public string SigningKey { get; } = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
    public string? Database { get; private set; }

    /// <summary>Creates the benchmark's database (once) and starts an instance with <paramref name="settings"/> over the defaults.</summary>
    public async Task<WebApplication> StartAsync(string spoolDirectory, IReadOnlyDictionary<string, string?> settings)
    {
        Database ??= await CreateDatabaseAsync(Postgres, "eci_bench_cache_");
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production", ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:minio"] = $"{S3};Bucket={Bucket}",
            ["ConnectionStrings:cachedb"] = Database,
            ["ConnectionStrings:redis"] = Redis,
            ["JobTokens:SigningKey"] = SigningKey,
            ["Cache:SpoolDirectory"] = spoolDirectory,
            ["Cache:AdminToken"] = "benchmark-admin-token-0123456789",
        });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.AddServiceDefaults();
        // Console logging of every request would measure the console, not the cache.
        builder.Logging.ClearProviders();
        builder.AddCache();
        var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapCache();
        await app.StartAsync();
        return app;
    }

    public static Uri AddressOf(WebApplication app) =>
        new(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single() + "/");

    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(" / ", File.ReadAllText("/proc/loadavg").Split(' ')[..3]) : "n/a";

    private static async Task<string> CreateDatabaseAsync(string server, string prefix)
    {
        var name = $"{prefix}{Guid.NewGuid():N}"[..40];
        await using var conn = new NpgsqlConnection(server);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\" TEMPLATE template0", conn);
        await cmd.ExecuteNonQueryAsync();
        return new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
    }
}
