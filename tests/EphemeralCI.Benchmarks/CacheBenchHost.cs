using EphemeralCI.IntegrationTests.Infrastructure;
using System.Diagnostics;
using System.Net.Sockets;
using System.Reflection;
using System.Text;
using EphemeralCI.JobTokens;
using Microsoft.Extensions.Options;
using Npgsql;

namespace EphemeralCI.Benchmarks;

/// <summary>
/// The cache as it is deployed: the built <c>EphemeralCI.Cache.Host</c> run as its own process (real Kestrel on loopback)
/// against the real Postgres, Redis and S3 emulator of <c>eng/services.sh</c>. Its own process, so the load generator and
/// the agent's client in the benchmark process share neither its GC nor its thread pool — as a runner never does.
/// Each benchmark gets its own database and bucket (left behind, as the other benchmarks leave theirs).
/// </summary>
internal sealed class CacheBenchHost
{
    public CacheBenchHost()
    {
        Postgres = Environment.GetEnvironmentVariable("ECI_POSTGRES") ?? throw new InvalidOperationException("ECI_POSTGRES is not set: eval \"$(eng/services.sh env)\"");
        Redis = Environment.GetEnvironmentVariable("ECI_REDIS") ?? throw new InvalidOperationException("ECI_REDIS is not set");
        S3 = Environment.GetEnvironmentVariable("ECI_S3") ?? throw new InvalidOperationException("ECI_S3 is not set");
        Tokens = new JobTokenService(Options.Create(new JobTokenOptions { SigningKey = SigningKey }), TimeProvider.System);
    }

    public string Postgres { get; }
    public string Redis { get; }
    public string S3 { get; }
    public string Bucket { get; } = $"eci-bench-{Guid.NewGuid():N}";
    /// <summary>Shared by every instance started here, so one job token works against all of them.</summary>
    public string SigningKey { get; } = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
    /// <summary>Issues job tokens the instances accept (the provisioner's role).</summary>
    public JobTokenService Tokens { get; }
    public string? Database { get; private set; }

    private static string CacheHostDll =>
        typeof(CacheBenchHost).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "EphemeralCICacheHostDll").Value!;

    /// <summary>Creates the benchmark's database (once) and starts an instance with <paramref name="settings"/> over the defaults.</summary>
    public async Task<CacheInstance> StartAsync(string spoolDirectory, IReadOnlyDictionary<string, string?> settings)
    {
        Database ??= await CreateDatabaseAsync(Postgres, "eci_bench_cache_");
        var address = new Uri($"http://127.0.0.1:{FreePort.Next()}/");
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { CacheHostDll, $"--urls={address.GetLeftPart(UriPartial.Authority)}" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(CacheHostDll)!,
        };
        foreach (var (key, value) in new Dictionary<string, string?>
        {
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            ["ConnectionStrings__minio"] = $"{S3};Bucket={Bucket}",
            ["ConnectionStrings__cachedb"] = Database,
            ["ConnectionStrings__redis"] = Redis,
            ["JobTokens__SigningKey"] = SigningKey,
            ["Cache__SpoolDirectory"] = spoolDirectory,
            ["Cache__AdminToken"] = "benchmark-admin-token-0123456789",
            // Logging every request would measure the console, not the cache.
            ["Logging__LogLevel__Default"] = "Warning",
        }.Concat(settings.Select(kv => KeyValuePair.Create(kv.Key.Replace(":", "__", StringComparison.Ordinal), kv.Value))))
        {
            start.Environment[key] = value;
        }
        var instance = new CacheInstance(Process.Start(start)!, address);
        try
        {
            await instance.WaitUntilHealthyAsync();
        }
        catch
        {
            await instance.DisposeAsync(); // no orphan holding the port and a core
            throw;
        }
        return instance;
    }

    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(" / ", File.ReadAllText("/proc/loadavg").Split(' ')[..3]) : "n/a";

    /// <summary>A loopback port nobody listens on now (shared by the benchmarks that start hosts).</summary>

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

/// <summary>One running cache host process; disposing stops it.</summary>
internal sealed class CacheInstance : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    public CacheInstance(Process process, Uri address)
    {
        _process = process;
        Address = address;
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public Uri Address { get; }

    public async Task WaitUntilHealthyAsync()
    {
        using var probe = new HttpClient { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(5) };
        for (var deadline = DateTime.UtcNow.AddMinutes(2); ; await Task.Delay(200))
        {
            if (_process.HasExited) throw new InvalidOperationException($"the cache host exited with {_process.ExitCode}:\n{Output()}");
            try
            {
                using var response = await probe.GetAsync("health");
                if (response.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the cache host did not become healthy:\n{Output()}");
        }
    }

    private string Output() { lock (_output) return _output.ToString(); }

    private bool _disposed;

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
