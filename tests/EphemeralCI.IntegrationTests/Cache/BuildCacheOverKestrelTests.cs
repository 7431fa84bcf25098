using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using EphemeralCI.Cache;
using EphemeralCI.JobTokens;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// Over real Kestrel and a real socket, where the server's own 30 MB request body limit applies:
/// entries bigger than that must still go through (the module lifts it and enforces its own).
/// </summary>
public sealed class BuildCacheOverKestrelTests
{
    [Fact]
    public async Task Entry_above_kestrels_default_body_limit_round_trips()
    {
        var spool = Path.Combine(Path.GetTempPath(), "eci-it-spool-" + Guid.NewGuid().ToString("N"));
        var builder = CacheTestApp.CreateBuilder($"{RealServices.S3};Bucket={CacheTestApp.NewBucketName()}", spool, 64L * 1024 * 1024, testServer: false,
            database: await RealServices.CreateDatabaseAsync("cache"));
        await using var app = builder.Build();
        app.MapCache();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        using var client = new HttpClient { BaseAddress = new Uri(address) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer",
            app.Services.GetRequiredService<JobTokenService>().Issue(Guid.NewGuid(), "acme/widgets", "refs/heads/main", DateTimeOffset.UtcNow.AddMinutes(10)));
        var content = RandomNumberGenerator.GetBytes(40 * 1024 * 1024);
        var hash = Convert.ToHexStringLower(SHA256.HashData(content));

        using var put = await client.PutAsync($"/cache/cas/{hash}", new ByteArrayContent(content));
        using var get = await client.GetAsync($"/cache/cas/{hash}", HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(HttpStatusCode.NoContent, put.StatusCode);
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(content.Length, get.Content.Headers.ContentLength);
        await using var body = await get.Content.ReadAsStreamAsync();
        Assert.Equal(hash, Convert.ToHexStringLower(await SHA256.HashDataAsync(body)));
        if (Directory.Exists(spool))
        {
            Assert.Empty(Directory.GetFiles(spool));
            Directory.Delete(spool, recursive: true);
        }
    }
}
