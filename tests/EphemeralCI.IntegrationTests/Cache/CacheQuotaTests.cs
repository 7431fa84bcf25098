using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Storage;
using EphemeralCI.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// The embedded default (objects in a local folder) under a small per-repository quota: least
/// recently used entries go first, a restore counts as a use, other repositories are untouched.
/// </summary>
public sealed class CacheQuotaTests : IAsyncLifetime
{
    private const string Version = "v1-linux-zstd";
    private CacheTestApp _cache = null!;

    public async Task InitializeAsync() => _cache = await CacheTestApp.StartAsync(1024 * 1024, fileSystem: true,
        settings: new Dictionary<string, string?> { ["Cache:RepositoryQuotaBytes"] = "1000" });

    public async Task DisposeAsync() => await _cache.DisposeAsync();

    [Fact]
    public async Task Over_quota_the_least_recently_used_entries_are_evicted()
    {
        var repo = $"acme/quota-{Guid.NewGuid():N}";
        var neighbour = $"acme/quota-{Guid.NewGuid():N}";
        var job = new CacheProtocolClient(_cache.Client, _cache.Mint(repo));
        var other = new CacheProtocolClient(_cache.Client, _cache.Mint(neighbour));
        (await other.SaveV2Async("theirs", Version, new byte[900])).EnsureSuccessStatusCode();
        (await job.SaveV2Async("first", Version, new byte[400])).EnsureSuccessStatusCode();
        (await job.SaveV2Async("second", Version, new byte[400])).EnsureSuccessStatusCode();
        Assert.NotNull(await job.LookupV2Async("first", Version)); // "first" is now more recently used than "second"

        (await job.SaveV2Async("third", Version, new byte[400])).EnsureSuccessStatusCode();

        Assert.NotNull(await job.LookupV2Async("first", Version));
        Assert.Null(await job.LookupV2Async("second", Version));
        Assert.NotNull(await job.LookupV2Async("third", Version));
        Assert.NotNull(await other.LookupV2Async("theirs", Version));
        Assert.IsType<FileSystemBlobStore>(_cache.Blobs);
        Assert.Equal(3, Directory.GetFiles(_cache.FileSystemRoot!, "*", SearchOption.AllDirectories).Length);
    }

    [Fact]
    public async Task An_entry_larger_than_the_quota_is_refused_at_upload()
    {
        var job = new CacheProtocolClient(_cache.Client, _cache.Mint($"acme/quota-{Guid.NewGuid():N}"));
        var url = await job.CreateAsync("huge", Version);

        using var put = await job.PutBlobAsync(url, new byte[1001]);

        await ProblemAssert.IsProblemAsync(put, System.Net.HttpStatusCode.RequestEntityTooLarge, "body");
    }
}

/// <summary>Reservations in the real Redis: one writer across replicas.</summary>
public sealed class RedisCacheReservationsTests
{
    [Fact]
    public async Task Only_the_holder_may_reserve_again_or_release()
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(RealServices.Redis);
        var replicaA = new RedisCacheReservations(redis);
        var replicaB = new RedisCacheReservations(redis);
        var name = CacheReservationNames.For("acme/redis", "refs/heads/main", Guid.NewGuid().ToString("N"), "v");
        Guid a = Guid.NewGuid(), b = Guid.NewGuid();

        Assert.True(await replicaA.TryAcquireAsync(name, a, TimeSpan.FromMinutes(1)));
        Assert.True(await replicaB.TryAcquireAsync(name, a, TimeSpan.FromMinutes(1)));
        Assert.False(await replicaB.TryAcquireAsync(name, b, TimeSpan.FromMinutes(1)));
        await replicaB.ReleaseAsync(name, b);
        Assert.False(await replicaA.TryAcquireAsync(name, b, TimeSpan.FromMinutes(1)));
        await replicaA.ReleaseAsync(name, a);
        Assert.True(await replicaB.TryAcquireAsync(name, b, TimeSpan.FromMinutes(1)));
        await replicaB.ReleaseAsync(name, b);
    }
}
