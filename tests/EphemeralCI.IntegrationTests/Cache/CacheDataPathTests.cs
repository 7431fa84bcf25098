using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using EphemeralCI.Cache.Apis;
using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// The large-archive data path on the S3 emulator (blocks forwarded as multipart parts) and on a folder: blocks in
/// any arrival order, reordered or omitted in the block list, parts too small for S3; byte ranges on download.
/// </summary>
public sealed class CacheDataPathTests : IAsyncLifetime
{
    private const string Version = "1f4c5d7a9b3e1f2a8c6d4e0b7a9f1c3e5d7b9a1c3e5f7d9b1a3c5e7f9d1b3a5c";
    private const int FiveMiB = 5 * 1024 * 1024;
    private CacheTestApp _s3 = null!;
    private CacheTestApp _folder = null!;

    public async Task InitializeAsync()
    {
        _s3 = await CacheTestApp.StartAsync(64L * 1024 * 1024);
        _folder = await CacheTestApp.StartAsync(64L * 1024 * 1024, fileSystem: true);
    }

    public async Task DisposeAsync()
    {
        await _s3.DisposeAsync();
        await _folder.DisposeAsync();
    }

    private CacheTestApp App(bool s3) => s3 ? _s3 : _folder;

    private static string NewRepository() => $"acme/path-{Guid.NewGuid():N}";

    private static async Task<CacheEntry> EntryAsync(CacheTestApp app, string repository, string key)
    {
        await using var scope = app.App.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<CacheDbContext>().Entries.AsNoTracking().SingleAsync(e => e.Repository == repository && e.Key == key);
    }

    private static async Task<byte[]> DownloadAsync(CacheTestApp app, string url)
    {
        using var response = await app.Client.GetAsync(url);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadAsByteArrayAsync();
    }

    /// <summary>Uploads the blocks (id → content) in the given order, two at a time, then commits <paramref name="list"/> and finalizes.</summary>
    private static async Task<HttpResponseMessage> SaveBlocksAsync(CacheTestApp app, CacheProtocolClient job, string key,
        IReadOnlyList<(string Id, byte[] Content)> uploadOrder, string[] list, byte[] expected, Action<string>? beforeFinalize = null)
    {
        var url = await job.CreateAsync(key, Version);
        foreach (var pair in uploadOrder.Chunk(2))
        {
            var puts = await Task.WhenAll(pair.Select(b => job.PutBlockAsync(url, b.Id, b.Content)));
            foreach (var put in puts) Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        }
        (await job.PutBlockListAsync(url, list)).EnsureSuccessStatusCode();
        beforeFinalize?.Invoke(url);
        _ = app;
        return await job.TwirpAsync("FinalizeCacheEntryUpload", new Dictionary<string, object?>
        {
            ["key"] = key, ["version"] = Version, ["size_bytes"] = expected.Length.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["sha256"] = CacheProtocolClient.Sha256(expected),
        });
    }

    public static TheoryData<bool> Stores => new() { true, false };

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Blocks_arriving_out_of_order_become_the_archive_in_block_list_order(bool s3)
    {
        var app = App(s3);
        var repo = NewRepository();
        var job = new CacheProtocolClient(app.Client, app.Mint(repo));
        var blocks = Enumerable.Range(0, 4).Select(i => ($"blk-{i:D6}", RandomNumberGenerator.GetBytes(i < 3 ? FiveMiB + 1000 * i : 12_345))).ToArray();
        var expected = blocks.SelectMany(b => b.Item2).ToArray();
        var sawMultipart = false;

        using var finalized = await SaveBlocksAsync(app, job, "ordered", [blocks[2], blocks[0], blocks[3], blocks[1]], blocks.Select(b => b.Item1).ToArray(), expected,
            _ => sawMultipart = Directory.GetFiles(app.SpoolDirectory, "multipart", SearchOption.AllDirectories).Length > 0);

        finalized.EnsureSuccessStatusCode();
        // On S3 the blocks went out as parts while they arrived; a folder has no multipart upload.
        Assert.Equal(s3, sawMultipart);
        var entry = await EntryAsync(app, repo, "ordered");
        Assert.Equal(CacheProtocolClient.Sha256(expected), entry.Sha256);
        Assert.Equal(expected, await DownloadAsync(app, (await job.LookupV2Async("ordered", Version))!.Value.Url));
        Assert.False(Directory.Exists(app.Service<UploadStaging>().DirectoryOf(entry.Id)));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_block_list_that_reorders_or_omits_blocks_is_what_gets_stored_and_hashed(bool s3)
    {
        var app = App(s3);
        var repo = NewRepository();
        var job = new CacheProtocolClient(app.Client, app.Mint(repo));
        var blocks = Enumerable.Range(0, 4).Select(i => ($"blk-{i:D6}", RandomNumberGenerator.GetBytes(FiveMiB + 17 * i))).ToArray();
        byte[] Of(params int[] order) => order.SelectMany(i => blocks[i].Item2).ToArray();

        using var reordered = await SaveBlocksAsync(app, job, "reordered", blocks, [blocks[1].Item1, blocks[0].Item1, blocks[2].Item1, blocks[3].Item1], Of(1, 0, 2, 3));
        using var omitted = await SaveBlocksAsync(app, job, "omitted", blocks, [blocks[0].Item1, blocks[1].Item1, blocks[3].Item1], Of(0, 1, 3));
        // The same blocks, but finalize claims the arrival order's hash: refused, nothing stored.
        var url = await job.CreateAsync("lying", Version);
        foreach (var b in blocks) (await job.PutBlockAsync(url, b.Item1, b.Item2)).EnsureSuccessStatusCode();
        (await job.PutBlockListAsync(url, blocks[3].Item1, blocks[2].Item1)).EnsureSuccessStatusCode();
        using var lying = await job.TwirpAsync("FinalizeCacheEntryUpload", new Dictionary<string, object?>
        {
            ["key"] = "lying", ["version"] = Version, ["size_bytes"] = Of(3, 2).Length.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["sha256"] = CacheProtocolClient.Sha256(Of(2, 3)),
        });

        reordered.EnsureSuccessStatusCode();
        omitted.EnsureSuccessStatusCode();
        Assert.Equal(Of(1, 0, 2, 3), await DownloadAsync(app, (await job.LookupV2Async("reordered", Version))!.Value.Url));
        Assert.Equal(Of(0, 1, 3), await DownloadAsync(app, (await job.LookupV2Async("omitted", Version))!.Value.Url));
        Assert.Equal(CacheProtocolClient.Sha256(Of(0, 1, 3)), (await EntryAsync(app, repo, "omitted")).Sha256);
        await ProblemAssert.IsProblemAsync(lying, HttpStatusCode.BadRequest, "sha256");
        Assert.Null(await job.LookupV2Async("lying", Version));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Small_blocks_and_ids_without_an_index_are_stored_from_the_spool(bool s3)
    {
        var app = App(s3);
        var repo = NewRepository();
        var job = new CacheProtocolClient(app.Client, app.Mint(repo));
        // Below S3's 5 MiB part minimum, then a big one; and ids that name no index at all.
        var small = Enumerable.Range(0, 3).Select(i => ($"s-{i:D4}", RandomNumberGenerator.GetBytes(i == 2 ? FiveMiB : 70_000))).ToArray();
        var named = new[] { ("alpha", RandomNumberGenerator.GetBytes(FiveMiB)), ("beta", RandomNumberGenerator.GetBytes(3000)) };

        using var first = await SaveBlocksAsync(app, job, "small", small, small.Select(b => b.Item1).ToArray(), small.SelectMany(b => b.Item2).ToArray());
        using var second = await SaveBlocksAsync(app, job, "named", named, ["alpha", "beta"], named.SelectMany(b => b.Item2).ToArray());

        first.EnsureSuccessStatusCode();
        second.EnsureSuccessStatusCode();
        Assert.Equal(small.SelectMany(b => b.Item2).ToArray(), await DownloadAsync(app, (await job.LookupV2Async("small", Version))!.Value.Url));
        Assert.Equal(named.SelectMany(b => b.Item2).ToArray(), await DownloadAsync(app, (await job.LookupV2Async("named", Version))!.Value.Url));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Ranges_are_answered_with_206_and_the_whole_archives_digest(bool s3)
    {
        var app = App(s3);
        var repo = NewRepository();
        var job = new CacheProtocolClient(app.Client, app.Mint(repo));
        var content = RandomNumberGenerator.GetBytes(100_000);
        (await job.SaveV2Async("ranges", Version, content)).EnsureSuccessStatusCode();
        var url = (await job.LookupV2Async("ranges", Version))!.Value.Url;

        async Task<HttpResponseMessage> Get(string? range, bool clientVerifies = false)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            if (range is not null) request.Headers.TryAddWithoutValidation("Range", range);
            if (clientVerifies) request.Headers.Add(BlobTransferApi.ClientVerifiesHeader, "sha-256");
            return await app.Client.SendAsync(request);
        }
        using var middle = await Get("bytes=1000-1999");
        using var open = await Get("bytes=99000-");
        using var suffix = await Get("bytes=-10");
        using var beyond = await Get("bytes=100000-");
        using var several = await Get("bytes=0-9,20-29");
        using var all = await Get("bytes=0-");
        using var verifiedByClient = await Get(null, clientVerifies: true);

        Assert.Equal(HttpStatusCode.PartialContent, middle.StatusCode);
        Assert.Equal("bytes 1000-1999/100000", middle.Content.Headers.ContentRange?.ToString());
        Assert.Equal(content[1000..2000], await middle.Content.ReadAsByteArrayAsync());
        Assert.Equal($"sha-256=:{Convert.ToBase64String(SHA256.HashData(content))}:", middle.Headers.GetValues("Repr-Digest").Single());
        Assert.Equal(content[99000..], await open.Content.ReadAsByteArrayAsync());
        Assert.Equal(content[^10..], await suffix.Content.ReadAsByteArrayAsync());
        await ProblemAssert.IsProblemAsync(beyond, HttpStatusCode.RequestedRangeNotSatisfiable, "Range");
        Assert.Equal(HttpStatusCode.OK, several.StatusCode);
        Assert.Equal(content, await several.Content.ReadAsByteArrayAsync());
        // A range of the whole archive is the whole archive, checked; only a client that says it verifies (the agent)
        // gets it unchecked, sparing the cache its hash pass.
        Assert.Equal(HttpStatusCode.OK, all.StatusCode);
        Assert.Equal(content, await all.Content.ReadAsByteArrayAsync());
        Assert.Equal(HttpStatusCode.OK, verifiedByClient.StatusCode);
        Assert.Equal(content, await verifiedByClient.Content.ReadAsByteArrayAsync());
        Assert.Equal($"sha-256=:{Convert.ToBase64String(SHA256.HashData(content))}:", verifiedByClient.Headers.GetValues("Repr-Digest").Single());
    }

    [Fact]
    public async Task The_lookup_carries_the_archives_sha256_and_size_and_no_direct_url_unless_configured()
    {
        var repo = NewRepository();
        var job = new CacheProtocolClient(_s3.Client, _s3.Mint(repo));
        var content = RandomNumberGenerator.GetBytes(1234);
        (await job.SaveV2Async("described", Version, content)).EnsureSuccessStatusCode();

        using var response = await job.TwirpAsync("GetCacheEntryDownloadURL", new { key = "described", restore_keys = Array.Empty<string>(), version = Version });
        var body = (await response.Content.ReadFromJsonAsync<JsonObject>())!;

        Assert.Equal(CacheProtocolClient.Sha256(content), body["sha256"]!.GetValue<string>());
        Assert.Equal("1234", body["size_bytes"]!.GetValue<string>());
        Assert.Null(body["direct_download_url"]);
    }
}
