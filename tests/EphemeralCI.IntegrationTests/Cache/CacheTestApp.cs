using System.Security.Cryptography;
using EphemeralCI.Cache;
using EphemeralCI.Cache.Storage;
using EphemeralCI.JobTokens;
using EphemeralCI.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// The cache module composed into a bare WebApplication (as the all-in-one server will compose it)
/// against the real S3 emulator, with a bucket and a spool folder of its own.
/// </summary>
public sealed class CacheTestApp : IAsyncDisposable
{
    private CacheTestApp(WebApplication app, string bucket, string spool)
    {
        App = app;
        Bucket = bucket;
        SpoolDirectory = spool;
        Client = app.GetTestClient();
        Tokens = app.Services.GetRequiredService<JobTokenService>();
        Store = app.Services.GetRequiredService<S3BlobStore>();
    }

    public WebApplication App { get; }
    public HttpClient Client { get; }
    public JobTokenService Tokens { get; }
    public S3BlobStore Store { get; }
    public string Bucket { get; }
    public string SpoolDirectory { get; }

    public static string NewBucketName() => $"eci-it-{Guid.NewGuid():N}";

    public static WebApplicationBuilder CreateBuilder(string s3ConnectionString, string spool, long maxObjectBytes, bool testServer = true)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing", ContentRootPath = AppContext.BaseDirectory });
        if (testServer) builder.WebHost.UseTestServer();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:minio"] = s3ConnectionString,
            ["JobTokens:SigningKey"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
            ["Cache:MaxObjectBytes"] = maxObjectBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Cache:SpoolDirectory"] = spool,
        });
        builder.AddCache();
        return builder;
    }

    public static async Task<CacheTestApp> StartAsync(long maxObjectBytes)
    {
        var bucket = NewBucketName();
        var spool = Path.Combine(Path.GetTempPath(), "eci-it-spool-" + Guid.NewGuid().ToString("N"));
        var app = CreateBuilder($"{RealServices.S3};Bucket={bucket}", spool, maxObjectBytes).Build();
        app.MapHealthChecks("/health");
        app.MapCache();
        await app.StartAsync();
        return new CacheTestApp(app, bucket, spool);
    }

    public string Mint(string repository, DateTimeOffset? deadline = null) =>
        Tokens.Issue(Guid.NewGuid(), repository, "refs/heads/main", deadline ?? DateTimeOffset.UtcNow.AddMinutes(10));

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.DisposeAsync();
        if (Directory.Exists(SpoolDirectory)) Directory.Delete(SpoolDirectory, recursive: true);
    }
}
