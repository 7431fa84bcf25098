using EphemeralCI.Cache;
using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Storage;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// The embedded default (objects in a local folder) under a small per-repository quota: least
/// recently used entries go first, a restore counts as a use, other repositories are untouched.
/// Access times are recorded at most once a minute per entry, so the test moves a fake clock by
/// more than that between uses (the order would otherwise hang on sub-second timing).
/// </summary>
public sealed class CacheQuotaTests : IAsyncLifetime
{
    private const string Version = "v1-linux-zstd";
    private static readonly TimeSpan Step = TimeSpan.FromMinutes(2);
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UtcNow);
    private CacheTestApp _cache = null!;

    public async Task InitializeAsync() => _cache = await CacheTestApp.StartAsync(1024 * 1024, fileSystem: true, clock: _clock,
        settings: new Dictionary<string, string?>
        {
            ["Cache:RepositoryQuotaBytes"] = "1000",
            ["Cache:ScopeQuotaBytes"] = "600",
            ["Cache:AccessTouchInterval"] = "00:01:00",
            // No janitor pass while the fake clock moves: the commits' own quota checks are under test.
            ["Cache:JanitorInterval"] = "1.00:00:00",
        });

    public async Task DisposeAsync() => await _cache.DisposeAsync();

    [Fact]
    public async Task Over_quota_the_least_recently_used_entries_are_evicted()
    {
        var repo = $"acme/quota-{Guid.NewGuid():N}";
        var neighbour = $"acme/quota-{Guid.NewGuid():N}";
        var job = new CacheProtocolClient(_cache.Client, _cache.Mint(repo, _clock.GetUtcNow().AddHours(1)));
        var other = new CacheProtocolClient(_cache.Client, _cache.Mint(neighbour, _clock.GetUtcNow().AddHours(1)));
        (await other.SaveV2Async("theirs", Version, new byte[900])).EnsureSuccessStatusCode();
        (await job.SaveV2Async("first", Version, new byte[400])).EnsureSuccessStatusCode();
        _clock.Advance(Step);
        (await job.SaveV2Async("second", Version, new byte[400])).EnsureSuccessStatusCode();
        _clock.Advance(Step);
        Assert.NotNull(await job.LookupV2Async("first", Version)); // "first" is now more recently used than "second"
        _clock.Advance(Step);

        (await job.SaveV2Async("third", Version, new byte[400])).EnsureSuccessStatusCode();

        Assert.NotNull(await job.LookupV2Async("first", Version));
        Assert.Null(await job.LookupV2Async("second", Version));
        Assert.NotNull(await job.LookupV2Async("third", Version));
        Assert.NotNull(await other.LookupV2Async("theirs", Version));
        Assert.IsType<FileSystemBlobStore>(_cache.Blobs);
        Assert.Equal(3, Directory.GetFiles(_cache.FileSystemRoot!, "*", SearchOption.AllDirectories).Length);
    }

    [Fact]
    public async Task A_feature_branch_filling_its_budget_evicts_its_own_entries_never_the_default_branchs()
    {
        var repo = $"acme/quota-{Guid.NewGuid():N}";
        var main = new CacheProtocolClient(_cache.Client, _cache.Mint(repo, _clock.GetUtcNow().AddHours(1)));
        var feature = new CacheProtocolClient(_cache.Client, _cache.Mint(repo, _clock.GetUtcNow().AddHours(1), gitRef: "refs/heads/feature"));
        (await main.SaveV2Async("trusted", Version, new byte[400])).EnsureSuccessStatusCode();
        _clock.Advance(Step);
        (await feature.SaveV2Async("flood-1", Version, new byte[400])).EnsureSuccessStatusCode();
        _clock.Advance(Step);

        // 1200 bytes in the repository, 800 in the feature branch's 600-byte budget: the default branch's entry is the
        // least recently used, but only the feature branch's own oldest entry may go.
        (await feature.SaveV2Async("flood-2", Version, new byte[400])).EnsureSuccessStatusCode();

        Assert.NotNull(await main.LookupV2Async("trusted", Version));
        Assert.Null(await feature.LookupV2Async("flood-1", Version));
        Assert.NotNull(await feature.LookupV2Async("flood-2", Version));
    }

    [Fact]
    public async Task A_feature_branch_write_that_fits_only_by_evicting_the_default_branch_is_itself_dropped()
    {
        var repo = $"acme/quota-{Guid.NewGuid():N}";
        var main = new CacheProtocolClient(_cache.Client, _cache.Mint(repo, _clock.GetUtcNow().AddHours(1)));
        var feature = new CacheProtocolClient(_cache.Client, _cache.Mint(repo, _clock.GetUtcNow().AddHours(1), gitRef: "refs/pull/9/merge"));
        (await main.SaveV2Async("trusted", Version, new byte[800])).EnsureSuccessStatusCode();
        _clock.Advance(Step);

        (await feature.SaveV2Async("flood", Version, new byte[500])).EnsureSuccessStatusCode();

        Assert.NotNull(await main.LookupV2Async("trusted", Version));
        Assert.Null(await feature.LookupV2Async("flood", Version));
    }

    [Fact]
    public async Task The_default_branchs_own_write_evicts_other_refs_first_then_its_own()
    {
        var repo = $"acme/quota-{Guid.NewGuid():N}";
        var main = new CacheProtocolClient(_cache.Client, _cache.Mint(repo, _clock.GetUtcNow().AddHours(1)));
        var feature = new CacheProtocolClient(_cache.Client, _cache.Mint(repo, _clock.GetUtcNow().AddHours(1), gitRef: "refs/heads/feature"));
        (await main.SaveV2Async("old", Version, new byte[300])).EnsureSuccessStatusCode();
        _clock.Advance(Step);
        (await feature.SaveV2Async("theirs", Version, new byte[300])).EnsureSuccessStatusCode();
        _clock.Advance(Step);

        (await main.SaveV2Async("new", Version, new byte[500])).EnsureSuccessStatusCode();

        Assert.Null(await feature.LookupV2Async("theirs", Version)); // more recently used than "old", but not the default branch's
        Assert.NotNull(await main.LookupV2Async("old", Version));
        Assert.NotNull(await main.LookupV2Async("new", Version));
    }

    [Fact]
    public async Task A_feature_branch_entry_larger_than_its_budget_is_refused_at_upload()
    {
        var job = new CacheProtocolClient(_cache.Client, _cache.Mint($"acme/quota-{Guid.NewGuid():N}", gitRef: "refs/heads/feature"));
        var url = await job.CreateAsync("huge", Version);

        using var put = await job.PutBlobAsync(url, new byte[601]);

        await ProblemAssert.IsProblemAsync(put, System.Net.HttpStatusCode.RequestEntityTooLarge, "body");
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
        var replicaA = new RedisCacheReservations(redis, Namespaced("deployment"));
        var replicaB = new RedisCacheReservations(redis, Namespaced("deployment"));
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

    [Fact]
    public async Task Deployments_sharing_one_Redis_hold_their_own_reservations()
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(RealServices.Redis);
        // Two cache databases behind one Redis: each deployment's namespace, as derived from its database.
        var run = Guid.NewGuid().ToString("N");
        var first = CacheLookupNames.Namespace($"Host=db;Database=first-{run}");
        var second = CacheLookupNames.Namespace($"Host=db;Database=second-{run}");
        var deploymentA = new RedisCacheReservations(redis, Namespaced(first));
        var deploymentB = new RedisCacheReservations(redis, Namespaced(second));
        var replicaOfA = new RedisCacheReservations(redis, Namespaced(first));
        var name = CacheReservationNames.For("acme/shared", "refs/heads/main", run, "v");
        Guid a = Guid.NewGuid(), b = Guid.NewGuid(), c = Guid.NewGuid();

        Assert.True(await deploymentA.TryAcquireAsync(name, a, TimeSpan.FromMinutes(1)));
        Assert.True(await deploymentB.TryAcquireAsync(name, b, TimeSpan.FromMinutes(1)));
        Assert.False(await replicaOfA.TryAcquireAsync(name, c, TimeSpan.FromMinutes(1)));

        await deploymentA.ReleaseAsync(name, a);
        await deploymentB.ReleaseAsync(name, b);
    }

    private static IOptions<CacheOptions> Namespaced(string redisNamespace) => Options.Create(new CacheOptions { RedisNamespace = redisNamespace });
}
