using System.Text.Json;
using EphemeralCI.Cli;
using EphemeralCI.IntegrationTests.Cache;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cli;

/// <summary>
/// `eci cache` against a real cache host: the cache module on real Kestrel (the CLI's own HttpClient over a
/// loopback socket), a fresh Postgres database and the S3 emulator, with entries saved through the v2 protocol.
/// </summary>
public sealed class CliCacheTests : IAsyncLifetime
{
    private const string Version = "v1-linux-zstd";
    private readonly string _repository = $"acme/cli-cache-{Guid.NewGuid():N}";
    private CacheTestApp _cache = null!;
    private CliHarness _cli = null!;

    public async Task InitializeAsync()
    {
        _cache = await CacheTestApp.StartAsync(1024 * 1024, kestrel: true);
        _cli = new CliHarness(handler: null);
        // The AppHost topology: the cache at an address of its own, with its own admin token.
        _cli.Environment["ECI_CACHE_SERVER"] = _cache.BaseAddress.ToString();
        _cli.Environment["ECI_CACHE_TOKEN"] = CacheTestApp.AdminToken;
    }

    public async Task DisposeAsync()
    {
        _cli.Dispose();
        await _cache.DisposeAsync();
    }

    private Task<CliRun> Eci(params string[] args) => _cli.RunAsync("eci_unused", args);

    [Fact]
    public async Task Usage_list_and_delete()
    {
        var main = new CacheProtocolClient(_cache.Client, _cache.Mint(_repository));
        var feature = new CacheProtocolClient(_cache.Client, _cache.Mint(_repository, gitRef: "refs/heads/feature"));
        (await main.SaveV2Async("npm-linux-1", Version, new byte[1500])).EnsureSuccessStatusCode();
        (await feature.SaveV2Async("npm-linux-2", Version, new byte[2500])).EnsureSuccessStatusCode();
        (await main.SaveV2Async("nuget-linux-1", Version, new byte[100])).EnsureSuccessStatusCode();
        await main.CreateAsync("npm-linux-3", Version); // reserved, never committed

        var usage = await Eci("cache", "usage");
        Assert.True(usage.ExitCode == 0, usage.ToString());
        var row = usage.StdOut.Split('\n').Single(l => l.Contains(_repository, StringComparison.Ordinal));
        Assert.Contains("4.0 KiB", row); // 1500 + 2500 + 100 bytes committed
        var usageJson = JsonDocument.Parse((await Eci("cache", "usage", "--json")).StdOut).RootElement.EnumerateArray()
            .Single(u => u.GetProperty("repository").GetString() == _repository);
        Assert.Equal(3, usageJson.GetProperty("entries").GetInt32());
        Assert.Equal(1, usageJson.GetProperty("reserved").GetInt32());
        Assert.Equal(4100, usageJson.GetProperty("bytes").GetInt64());

        var table = await Eci("cache", "list", "--repo", _repository, "--key-prefix", "npm-");
        Assert.True(table.ExitCode == 0, table.ToString());
        Assert.Contains("npm-linux-1", table.StdOut);
        Assert.Contains("npm-linux-2", table.StdOut);
        Assert.Contains("refs/heads/feature", table.StdOut);
        Assert.DoesNotContain("nuget-linux-1", table.StdOut);
        var onFeature = JsonDocument.Parse((await Eci("cache", "list", "--repo", _repository, "--scope", "refs/heads/feature", "--json")).StdOut).RootElement;
        var entry = Assert.Single(onFeature.EnumerateArray());
        Assert.Equal("npm-linux-2", entry.GetProperty("key").GetString());
        var paged = JsonDocument.Parse((await Eci("cache", "list", "--repo", _repository, "--limit", "1", "--offset", "1", "--json")).StdOut).RootElement;
        Assert.Single(paged.EnumerateArray());

        Assert.NotNull(await feature.LookupV2Async("npm-linux-2", Version));
        var id = entry.GetProperty("id").GetInt64();
        var delete = await Eci("cache", "delete", id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(delete.ExitCode == 0, delete.ToString());
        Assert.Contains($"Cache entry {id} and its object are deleted", delete.StdOut);

        Assert.Null(await feature.LookupV2Async("npm-linux-2", Version));
        var after = JsonDocument.Parse((await Eci("cache", "list", "--repo", _repository, "--json")).StdOut).RootElement;
        Assert.DoesNotContain(after.EnumerateArray(), e => e.GetProperty("id").GetInt64() == id);
        Assert.Equal(3, after.GetArrayLength()); // the other two committed entries and the reservation
    }

    [Fact]
    public async Task A_missing_entry_is_not_found()
    {
        var delete = await Eci("cache", "delete", "987654321");

        Assert.Equal(ExitCodes.NotFound, delete.ExitCode);
        Assert.Contains("There is no cache entry 987654321", delete.StdErr);
        Assert.Contains("eci cache list", delete.StdErr);
    }

    [Fact]
    public async Task A_bad_token_is_refused_with_how_to_set_it()
    {
        _cli.Environment["ECI_CACHE_TOKEN"] = "not-the-cache-admin-token";

        foreach (var args in new[] { new[] { "cache", "usage" }, ["cache", "list"], ["cache", "delete", "1"] })
        {
            var refused = await Eci(args);
            Assert.Equal(ExitCodes.Auth, refused.ExitCode);
            Assert.Contains("The cache admin token was refused", refused.StdErr);
            Assert.Contains("eci config set --cache-token -", refused.StdErr);
            Assert.DoesNotContain("not-the-cache-admin-token", refused.StdErr + refused.StdOut);
            Assert.DoesNotContain("   at ", refused.StdErr); // a message, not a stack trace
        }
    }

    [Fact]
    public async Task An_invalid_page_size_names_the_field()
    {
        var list = await Eci("cache", "list", "--limit", "0");

        Assert.Equal(ExitCodes.Usage, list.ExitCode);
        Assert.Contains("limit", list.StdErr);
    }
}
