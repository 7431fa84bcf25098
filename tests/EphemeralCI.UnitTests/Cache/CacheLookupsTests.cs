using EphemeralCI.Cache;
using EphemeralCI.Cache.Entries;
using Microsoft.Extensions.Options;
using Xunit;

namespace EphemeralCI.UnitTests.Cache;

public sealed class CacheLookupsTests
{
    private const string Main = "refs/heads/main";
    private const string Feature = "refs/heads/feature";

    [Fact]
    public void Everything_an_answer_depends_on_names_a_different_lookup()
    {
        var name = CacheLookupNames.For(Feature, Main, "k", ["a", "b"], "v");
        Assert.Equal(name, CacheLookupNames.For(Feature, Main, "k", ["a", "b"], "v"));
        Assert.NotEqual(name, CacheLookupNames.For(Main, Main, "k", ["a", "b"], "v"));
        Assert.NotEqual(name, CacheLookupNames.For(Feature, "refs/heads/master", "k", ["a", "b"], "v"));
        Assert.NotEqual(name, CacheLookupNames.For(Feature, Main, "k2", ["a", "b"], "v"));
        Assert.NotEqual(name, CacheLookupNames.For(Feature, Main, "k", ["b", "a"], "v"));
        Assert.NotEqual(name, CacheLookupNames.For(Feature, Main, "k", ["a"], "v"));
        Assert.NotEqual(name, CacheLookupNames.For(Feature, Main, "k", ["a", "b"], "v2"));
    }

    [Theory]
    [InlineData(Feature)] // the job's own ref
    [InlineData(Main)]    // the default branch it fell back to
    public void A_hit_round_trips(string scope)
    {
        var hit = new RestoreHit(42, scope, "npm-linux-abc/with spaces", "v", new DateTimeOffset(2026, 11, 25, 10, 0, 0, TimeSpan.Zero),
            new DateTimeOffset(2026, 11, 25, 11, 0, 0, TimeSpan.Zero), new string('a', 64), 123_456, "objects/acme/42-0f1e");

        var decoded = CacheLookupNames.Decode(CacheLookupNames.Encode(new CachedLookup(hit), Main), Feature, Main, "v");

        Assert.Equal(hit, decoded?.Hit);
    }

    [Fact]
    public void A_miss_round_trips_and_anything_unknown_is_not_an_answer()
    {
        Assert.Null(CacheLookupNames.Decode(CacheLookupNames.Encode(new CachedLookup(null), Main), Feature, Main, "v")!.Hit);
        Assert.Null(CacheLookupNames.Decode(null, Feature, Main, "v"));
        Assert.Null(CacheLookupNames.Decode("", Feature, Main, "v"));
        Assert.Null(CacheLookupNames.Decode("42\t1\t1\tx\tkey", Feature, Main, "v"));
        Assert.Null(CacheLookupNames.Decode("-42\t1\t1\to\tkey", Feature, Main, "v"));
        Assert.Null(CacheLookupNames.Decode("42\t1\to\tkey", Feature, Main, "v"));
    }

    [Fact]
    public void The_namespace_follows_the_database_not_the_rest_of_the_connection_string()
    {
        var ns = CacheLookupNames.Namespace("Host=db;Port=5432;Database=cachedb;Username=cache;Password=one;Pooling=true");
        Assert.Equal(ns, CacheLookupNames.Namespace("host=DB;port=5432;database=cachedb;username=other;password=two;Timeout=30"));
        Assert.NotEqual(ns, CacheLookupNames.Namespace("Host=db;Port=5432;Database=cachedb2;Username=cache;Password=one"));
        Assert.NotEqual(ns, CacheLookupNames.Namespace("Host=db2;Port=5432;Database=cachedb;Username=cache;Password=one"));
        Assert.Equal("", CacheLookupNames.Namespace(null));
    }

    [Fact]
    public async Task In_process_an_answer_stored_under_a_replaced_generation_is_never_read()
    {
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        var lookups = new InProcessCacheLookups(Options.Create(new CacheOptions { LookupCacheLifetime = TimeSpan.FromMinutes(1) }), clock);

        var before = await lookups.ProbeAsync("acme/a", "lookup");
        await lookups.InvalidateAsync("acme/a"); // a commit lands while the reader is still reading the database
        await lookups.StoreAsync("acme/a", before.Generation!, "lookup", "-");
        Assert.Null((await lookups.ProbeAsync("acme/a", "lookup")).Answer);

        var current = await lookups.ProbeAsync("acme/a", "lookup");
        await lookups.StoreAsync("acme/a", current.Generation!, "lookup", "-");
        Assert.Equal("-", (await lookups.ProbeAsync("acme/a", "lookup")).Answer);
        Assert.Null((await lookups.ProbeAsync("acme/b", "lookup")).Answer); // other repositories are apart

        clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Null((await lookups.ProbeAsync("acme/a", "lookup")).Answer);
    }
}
