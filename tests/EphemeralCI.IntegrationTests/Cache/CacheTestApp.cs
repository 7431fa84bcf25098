using System.Security.Cryptography;
using EphemeralCI.Cache;
using EphemeralCI.Cache.Storage;
using EphemeralCI.JobTokens;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// The cache module composed into a bare WebApplication (as the all-in-one server will compose it)
/// against the real S3 emulator (or a folder), a Postgres database and a spool folder of its own;
/// on the in-memory test server, or on real Kestrel when a real client (node) must reach it.
/// </summary>
public sealed class CacheTestApp : IAsyncDisposable
{
    public const string AdminToken = "cache-admin-token-for-tests-0123456789";
    public const string AttestationToken = "cache-attestation-token-for-tests-0123456789";

    private CacheTestApp(WebApplication app, string? bucket, string spool, string? filesystemRoot, bool kestrel)
    {
        App = app;
        Bucket = bucket;
        SpoolDirectory = spool;
        FileSystemRoot = filesystemRoot;
        Tokens = app.Services.GetRequiredService<JobTokenService>();
        Blobs = app.Services.GetRequiredService<IBlobStore>();
        if (kestrel)
        {
            BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single() + "/");
            Client = new HttpClient { BaseAddress = BaseAddress };
        }
        else
        {
            Client = app.GetTestClient();
            BaseAddress = Client.BaseAddress!;
        }
    }

    public WebApplication App { get; }
    public HttpClient Client { get; }
    public Uri BaseAddress { get; }
    public JobTokenService Tokens { get; }
    public IBlobStore Blobs { get; }
    public S3BlobStore Store => (S3BlobStore)Blobs;
    public string? Bucket { get; }
    public string SpoolDirectory { get; }
    public string? FileSystemRoot { get; }

    public static string NewBucketName() => $"eci-it-{Guid.NewGuid():N}";

    /// <summary>A database name that is never created: for tests that stop before the cache touches its database.</summary>
    public static string UnusedDatabase => new NpgsqlConnectionStringBuilder(RealServices.Postgres) { Database = "eci_cache_not_created" }.ConnectionString;

    public static WebApplicationBuilder CreateBuilder(string? s3ConnectionString, string spool, long maxObjectBytes, bool testServer = true,
        string? database = null, IReadOnlyDictionary<string, string?>? settings = null, TimeProvider? clock = null, Action<IServiceCollection>? services = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing", ContentRootPath = AppContext.BaseDirectory });
        if (testServer) builder.WebHost.UseTestServer();
        else builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:minio"] = s3ConnectionString,
            ["ConnectionStrings:cachedb"] = database ?? UnusedDatabase,
            ["JobTokens:SigningKey"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
            ["Cache:MaxObjectBytes"] = maxObjectBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Cache:SpoolDirectory"] = spool,
            ["Cache:AdminToken"] = AdminToken,
            ["Cache:AttestationToken"] = AttestationToken,
        });
        if (settings is not null) builder.Configuration.AddInMemoryCollection(settings);
        // Before AddCache, which only adds the system clock when none is registered (and keeps a registered IBlobStore).
        if (clock is not null) builder.Services.AddSingleton(clock);
        services?.Invoke(builder.Services);
        builder.AddCache();
        return builder;
    }

    /// <param name="fileSystem">Objects in a temporary folder instead of the S3 emulator.</param>
    /// <param name="kestrel">Listen on a real loopback port (for node and other real clients).</param>
    /// <param name="clock">The cache's (and job tokens') clock, e.g. a FakeTimeProvider.</param>
    /// <param name="services">Registrations before the cache's own (e.g. a decorated <see cref="IBlobStore"/>, which AddCache then keeps).</param>
    public static async Task<CacheTestApp> StartAsync(long maxObjectBytes, bool fileSystem = false, bool kestrel = false,
        IReadOnlyDictionary<string, string?>? settings = null, TimeProvider? clock = null, Action<IServiceCollection, string?>? services = null)
    {
        var bucket = fileSystem ? null : NewBucketName();
        var spool = Path.Combine(Path.GetTempPath(), "eci-it-spool-" + Guid.NewGuid().ToString("N"));
        var root = fileSystem ? Path.Combine(Path.GetTempPath(), "eci-it-objects-" + Guid.NewGuid().ToString("N")) : null;
        var all = new Dictionary<string, string?>(settings ?? new Dictionary<string, string?>());
        if (root is not null) all["Cache:FileSystemRoot"] = root;
        var database = await RealServices.CreateDatabaseAsync("cache");
        var app = CreateBuilder(fileSystem ? null : $"{RealServices.S3};Bucket={bucket}", spool, maxObjectBytes, testServer: !kestrel, database, all, clock,
            services is null ? null : s => services(s, bucket)).Build();
        app.MapHealthChecks("/health");
        app.MapCache();
        await app.StartAsync();
        return new CacheTestApp(app, bucket, spool, root, kestrel);
    }

    public string Mint(string repository, DateTimeOffset? deadline = null, string gitRef = "refs/heads/main", Guid? jobId = null, int attempt = 1) =>
        Tokens.Issue(jobId ?? Guid.NewGuid(), repository, gitRef, deadline ?? DateTimeOffset.UtcNow.AddMinutes(10), attempt);

    public T Service<T>() where T : notnull => App.Services.GetRequiredService<T>();

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.DisposeAsync();
        if (Directory.Exists(SpoolDirectory)) Directory.Delete(SpoolDirectory, recursive: true);
        if (FileSystemRoot is not null && Directory.Exists(FileSystemRoot)) Directory.Delete(FileSystemRoot, recursive: true);
    }
}
