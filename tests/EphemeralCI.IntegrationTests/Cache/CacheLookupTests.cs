using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// Restore lookups answered from the lookup cache (in process for the embedded server, Redis for the
/// service) are never staler than the database: a commit, a delete, an eviction or a quarantine is
/// seen by the next lookup, however the earlier answers were cached.
/// </summary>
public abstract class CacheLookupTestsBase(bool redis) : IAsyncLifetime
{
    protected const string Version = "v1-linux-zstd";
    protected CacheTestApp Cache = null!;

    public async Task InitializeAsync()
    {
        var settings = new Dictionary<string, string?> { ["Cache:AccessTouchInterval"] = "00:01:00" };
        if (redis) settings["ConnectionStrings:redis"] = RealServices.Redis;
        Cache = await CacheTestApp.StartAsync(1024 * 1024, fileSystem: true, settings: settings);
    }

    public async Task DisposeAsync() => await Cache.DisposeAsync();

    [Fact]
    public void The_lookup_cache_of_the_configuration_is_used()
    {
        var lookups = Cache.Service<ICacheLookups>();
        if (redis) Assert.IsType<RedisCacheLookups>(lookups);
        else Assert.IsType<InProcessCacheLookups>(lookups);
    }

    [Fact]
    public async Task A_cached_miss_becomes_a_hit_once_the_entry_is_committed()
    {
        var job = new CacheProtocolClient(Cache.Client, Cache.Mint(NewRepository()));
        Assert.Null(await job.LookupV2Async("deps", Version));
        Assert.Null(await job.LookupV2Async("deps", Version)); // now from the lookup cache

        (await job.SaveV2Async("deps", Version, new byte[100])).EnsureSuccessStatusCode();

        Assert.Equal("deps", (await job.LookupV2Async("deps", Version))?.Key);
    }

    [Fact]
    public async Task A_cached_hit_is_gone_once_the_entry_is_deleted_or_quarantined()
    {
        var repo = NewRepository();
        var job = new CacheProtocolClient(Cache.Client, Cache.Mint(repo));
        (await job.SaveV2Async("deleted", Version, new byte[100])).EnsureSuccessStatusCode();
        (await job.SaveV2Async("quarantined", Version, new byte[100])).EnsureSuccessStatusCode();
        Assert.NotNull(await job.LookupV2Async("deleted", Version));
        Assert.NotNull(await job.LookupV2Async("quarantined", Version));

        await using (var scope = Cache.App.Services.CreateAsyncScope())
        {
            var entries = scope.ServiceProvider.GetRequiredService<CacheEntryService>();
            var db = scope.ServiceProvider.GetRequiredService<CacheDbContext>();
            await entries.DeleteAsync(await db.Entries.SingleAsync(e => e.Repository == repo && e.Key == "deleted"), default);
            await entries.QuarantineAsync(await db.Entries.SingleAsync(e => e.Repository == repo && e.Key == "quarantined"), "test", default);
        }

        Assert.Null(await job.LookupV2Async("deleted", Version));
        Assert.Null(await job.LookupV2Async("quarantined", Version));
    }

    [Fact]
    public async Task A_cached_restore_key_answer_moves_to_a_newer_entry()
    {
        var job = new CacheProtocolClient(Cache.Client, Cache.Mint(NewRepository()));
        (await job.SaveV2Async("deps-1", Version, new byte[100])).EnsureSuccessStatusCode();
        Assert.Equal("deps-1", (await job.LookupV2Async("deps-x", Version, "deps-"))?.Key);
        Assert.Equal("deps-1", (await job.LookupV2Async("deps-x", Version, "deps-"))?.Key);

        (await job.SaveV2Async("deps-2", Version, new byte[100])).EnsureSuccessStatusCode();

        Assert.Equal("deps-2", (await job.LookupV2Async("deps-x", Version, "deps-"))?.Key);
    }

    [Fact]
    public async Task Cached_answers_keep_branches_apart()
    {
        var repo = NewRepository();
        var main = new CacheProtocolClient(Cache.Client, Cache.Mint(repo));
        var feature = new CacheProtocolClient(Cache.Client, Cache.Mint(repo, gitRef: "refs/heads/feature"));
        (await feature.SaveV2Async("deps", Version, new byte[100])).EnsureSuccessStatusCode();
        Assert.NotNull(await feature.LookupV2Async("deps", Version));

        Assert.Null(await main.LookupV2Async("deps", Version));
        Assert.Null(await main.LookupV2Async("deps", Version));
        Assert.NotNull(await feature.LookupV2Async("deps", Version));
    }

    private static string NewRepository() => $"acme/lookup-{Guid.NewGuid():N}";
}

public sealed class InProcessCacheLookupTests() : CacheLookupTestsBase(redis: false);

public sealed class RedisCacheLookupTests() : CacheLookupTestsBase(redis: true)
{
    [Fact]
    public async Task An_answer_stored_under_a_replaced_or_lost_generation_is_never_read()
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(RealServices.Redis);
        var options = Options.Create(new EphemeralCI.Cache.CacheOptions());
        var replicaA = new RedisCacheLookups(redis, options, NullLogger<RedisCacheLookups>.Instance);
        var replicaB = new RedisCacheLookups(redis, options, NullLogger<RedisCacheLookups>.Instance);
        var repo = $"acme/lookup-{Guid.NewGuid():N}";

        var before = await replicaA.ProbeAsync(repo, "lookup");
        Assert.NotNull(before.Generation);
        Assert.Null(before.Answer);
        await replicaB.InvalidateAsync(repo); // a commit lands while A is still reading the database
        await replicaA.StoreAsync(repo, before.Generation!, "lookup", "-");
        Assert.Null((await replicaB.ProbeAsync(repo, "lookup")).Answer);

        var current = await replicaA.ProbeAsync(repo, "lookup");
        await replicaA.StoreAsync(repo, current.Generation!, "lookup", "-");
        Assert.Equal("-", (await replicaB.ProbeAsync(repo, "lookup")).Answer);

        // Redis losing the generation (eviction, restart without persistence) must not bring old answers back.
        await redis.GetDatabase().KeyDeleteAsync(RedisCacheLookups.PrefixOf(null, repo) + "gen");
        var afterLoss = await replicaB.ProbeAsync(repo, "lookup");
        Assert.NotEqual(current.Generation, afterLoss.Generation);
        Assert.Null(afterLoss.Answer);
    }

    [Fact]
    public async Task Deployments_with_different_databases_sharing_one_Redis_never_read_each_others_answers()
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(RealServices.Redis);
        RedisCacheLookups Deployment(string database) => new(redis,
            Options.Create(new EphemeralCI.Cache.CacheOptions { RedisNamespace = CacheLookupNames.Namespace($"Host=db;Database={database}") }),
            NullLogger<RedisCacheLookups>.Instance);
        var (first, second) = (Deployment("cache_a"), Deployment("cache_b"));
        var repo = $"acme/lookup-{Guid.NewGuid():N}";

        var probe = await first.ProbeAsync(repo, "lookup");
        await first.StoreAsync(repo, probe.Generation!, "lookup", "1\t0\t0\to\tkey");

        Assert.Equal("1\t0\t0\to\tkey", (await first.ProbeAsync(repo, "lookup")).Answer);
        Assert.Null((await second.ProbeAsync(repo, "lookup")).Answer);
    }
}

/// <summary>A hit writes the entry's access time at most once per Cache:AccessTouchInterval.</summary>
public sealed class CacheAccessTouchTests : IAsyncLifetime
{
    private const string Version = "v1-linux-zstd";
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UtcNow);
    private CacheTestApp _cache = null!;

    public async Task InitializeAsync() => _cache = await CacheTestApp.StartAsync(1024 * 1024, fileSystem: true, clock: _clock,
        settings: new Dictionary<string, string?> { ["Cache:AccessTouchInterval"] = "00:01:00", ["Cache:JanitorInterval"] = "1.00:00:00" });

    public async Task DisposeAsync() => await _cache.DisposeAsync();

    [Fact]
    public async Task Hits_within_the_interval_leave_the_access_time_and_the_first_hit_after_it_moves_it()
    {
        var repo = $"acme/touch-{Guid.NewGuid():N}";
        var job = new CacheProtocolClient(_cache.Client, _cache.Mint(repo, _clock.GetUtcNow().AddHours(1)));
        (await job.SaveV2Async("deps", Version, new byte[100])).EnsureSuccessStatusCode();
        var committedAt = await LastAccessAsync(repo);

        _clock.Advance(TimeSpan.FromSeconds(30));
        Assert.NotNull(await job.LookupV2Async("deps", Version));
        Assert.Equal(committedAt, await LastAccessAsync(repo));

        _clock.Advance(TimeSpan.FromSeconds(45));
        Assert.NotNull(await job.LookupV2Async("deps", Version));
        var touched = await LastAccessAsync(repo);
        Assert.Equal(_clock.GetUtcNow(), touched, TimeSpan.FromMilliseconds(1));

        _clock.Advance(TimeSpan.FromSeconds(30));
        Assert.NotNull(await job.LookupV2Async("deps", Version));
        Assert.Equal(touched, await LastAccessAsync(repo));
    }

    private async Task<DateTimeOffset> LastAccessAsync(string repository)
    {
        await using var scope = _cache.App.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<CacheDbContext>();
        return await db.Entries.Where(e => e.Repository == repository).Select(e => e.LastAccessedAt).SingleAsync();
    }
}
