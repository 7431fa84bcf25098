using System.Security.Cryptography;
using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>One cache on real Kestrel, S3 emulator, Postgres and Redis, shared by the toolkit tests.</summary>
public sealed class ToolkitCacheFixture : IAsyncLifetime
{
    public CacheTestApp Cache { get; private set; } = null!;

    public async Task InitializeAsync() => Cache = await CacheTestApp.StartAsync(256L * 1024 * 1024, kestrel: true,
        settings: new Dictionary<string, string?> { ["ConnectionStrings:redis"] = RealServices.Redis });

    public async Task DisposeAsync() => await Cache.DisposeAsync();
}

/// <summary>
/// The real <c>@actions/cache</c> 4.1.0 from npm, unchanged, run by node against our cache with both
/// protocols: v2 (Twirp + Azure block-blob upload to signed URLs) and v1 (REST with Content-Range chunks).
/// </summary>
public sealed class ActionsToolkitTests(ToolkitCacheFixture fixture) : IClassFixture<ToolkitCacheFixture>
{
    private const string Main = "refs/heads/main";
    private CacheTestApp Cache => fixture.Cache;

    private static string NewRepository() => $"acme/toolkit-{Guid.NewGuid():N}";

    [Theory]
    [InlineData("v1")]
    [InlineData("v2")]
    public async Task Saved_entry_restores_on_exact_key_with_the_same_content(string protocol)
    {
        var repo = NewRepository();
        var content = RandomNumberGenerator.GetBytes(300_000);
        using var saver = new ActionsToolkitRunner();
        saver.WriteData("deps.bin", content);
        saver.WriteData("nested/more.txt", "hello"u8.ToArray());
        using var restorer = new ActionsToolkitRunner();

        var saved = await saver.SaveAsync(Cache.BaseAddress, Cache.Mint(repo), protocol, "deps-linux-abc");
        var restored = await restorer.RestoreAsync(Cache.BaseAddress, Cache.Mint(repo), protocol, "deps-linux-abc");

        Assert.True(saved.Id > 0, saved.Output);
        Assert.Equal("deps-linux-abc", restored.Hit);
        // Proof the protocol under test was the one spoken: only v1 uploads chunks and commits itself, only v2 says which key hit.
        Assert.Equal(protocol == "v1", saved.Output.Contains("Cache saved successfully", StringComparison.Ordinal));
        Assert.Equal(protocol == "v2", restored.Output.Contains("Cache hit for: deps-linux-abc", StringComparison.Ordinal));
        Assert.Contains("Cache Size:", restored.Output, StringComparison.Ordinal);
        Assert.Equal(content, restorer.ReadData("deps.bin"));
        Assert.Equal("hello"u8.ToArray(), restorer.ReadData("nested/more.txt"));
    }

    [Theory]
    [InlineData("v1")]
    [InlineData("v2")]
    public async Task Restore_key_prefix_finds_the_newest_matching_entry(string protocol)
    {
        var repo = NewRepository();
        using var saver = new ActionsToolkitRunner();
        saver.WriteData("v.txt", "old"u8.ToArray());
        Assert.True((await saver.SaveAsync(Cache.BaseAddress, Cache.Mint(repo), protocol, "npm-linux-1111")).Id > 0);
        saver.WriteData("v.txt", "new"u8.ToArray());
        Assert.True((await saver.SaveAsync(Cache.BaseAddress, Cache.Mint(repo), protocol, "npm-linux-2222")).Id > 0);
        using var restorer = new ActionsToolkitRunner();

        var restored = await restorer.RestoreAsync(Cache.BaseAddress, Cache.Mint(repo), protocol, "npm-linux-9999", "npm-windows-", "npm-linux-");

        Assert.Equal("npm-linux-2222", restored.Hit);
        Assert.Equal("new"u8.ToArray(), restorer.ReadData("v.txt"));
    }

    [Theory]
    [InlineData("v1")]
    [InlineData("v2")]
    public async Task Unknown_key_is_a_miss_and_restores_nothing(string protocol)
    {
        using var restorer = new ActionsToolkitRunner();

        var restored = await restorer.RestoreAsync(Cache.BaseAddress, Cache.Mint(NewRepository()), protocol, "nothing-here", "nothing-");

        Assert.Null(restored.Hit);
        Assert.Null(restored.Error);
        Assert.Null(restorer.ReadData("deps.bin"));
    }

    [Theory]
    [InlineData("v1")]
    [InlineData("v2")]
    public async Task Feature_branch_entries_are_invisible_to_main_and_mains_are_visible_to_the_branch(string protocol)
    {
        var repo = NewRepository();
        const string feature = "refs/heads/feature/poison";
        using var featureJob = new ActionsToolkitRunner();
        featureJob.WriteData("tool", "from feature"u8.ToArray());
        Assert.True((await featureJob.SaveAsync(Cache.BaseAddress, Cache.Mint(repo, gitRef: feature), protocol, "build-tools")).Id > 0);
        using var mainJob = new ActionsToolkitRunner();
        mainJob.WriteData("main.txt", "from main"u8.ToArray());
        Assert.True((await mainJob.SaveAsync(Cache.BaseAddress, Cache.Mint(repo, gitRef: Main), protocol, "main-deps")).Id > 0);
        mainJob.ClearData();
        using var otherBranch = new ActionsToolkitRunner();

        var mainSeesFeature = await mainJob.RestoreAsync(Cache.BaseAddress, Cache.Mint(repo, gitRef: Main), protocol, "build-tools", "build-");
        var otherSeesFeature = await otherBranch.RestoreAsync(Cache.BaseAddress, Cache.Mint(repo, gitRef: "refs/heads/other"), protocol, "build-tools");
        var featureSeesMain = await featureJob.RestoreAsync(Cache.BaseAddress, Cache.Mint(repo, gitRef: feature), protocol, "main-deps");

        Assert.Null(mainSeesFeature.Hit);
        Assert.Null(mainJob.ReadData("tool"));
        Assert.Null(otherSeesFeature.Hit);
        Assert.Equal("main-deps", featureSeesMain.Hit);
        Assert.Equal("from main"u8.ToArray(), featureJob.ReadData("main.txt"));
    }

    [Theory]
    [InlineData("v1")]
    [InlineData("v2")]
    public async Task Another_repositorys_token_sees_nothing(string protocol)
    {
        var repo = NewRepository();
        using var saver = new ActionsToolkitRunner();
        saver.WriteData("secret.txt", "repo A only"u8.ToArray());
        Assert.True((await saver.SaveAsync(Cache.BaseAddress, Cache.Mint(repo), protocol, "shared-name")).Id > 0);
        using var stranger = new ActionsToolkitRunner();

        var restored = await stranger.RestoreAsync(Cache.BaseAddress, Cache.Mint(NewRepository()), protocol, "shared-name", "shared-");

        Assert.Null(restored.Hit);
        Assert.Null(stranger.ReadData("secret.txt"));
    }

    [Theory]
    [InlineData("v1")]
    [InlineData("v2")]
    public async Task Committed_entry_is_immutable_a_second_save_changes_nothing(string protocol)
    {
        var repo = NewRepository();
        using var first = new ActionsToolkitRunner();
        first.WriteData("v.txt", "first"u8.ToArray());
        Assert.True((await first.SaveAsync(Cache.BaseAddress, Cache.Mint(repo), protocol, "pinned")).Id > 0);
        using var second = new ActionsToolkitRunner();
        second.WriteData("v.txt", "second"u8.ToArray());

        var again = await second.SaveAsync(Cache.BaseAddress, Cache.Mint(repo), protocol, "pinned");
        using var restorer = new ActionsToolkitRunner();
        var restored = await restorer.RestoreAsync(Cache.BaseAddress, Cache.Mint(repo), protocol, "pinned");

        Assert.Equal(-1, again.Id);
        Assert.Equal("pinned", restored.Hit);
        Assert.Equal("first"u8.ToArray(), restorer.ReadData("v.txt"));
    }

    [Theory]
    [InlineData("v1")]
    [InlineData("v2")]
    public async Task The_toolkit_never_extracts_a_corrupted_entry(string protocol)
    {
        var repo = NewRepository();
        var content = RandomNumberGenerator.GetBytes(400_000);
        using var saver = new ActionsToolkitRunner();
        saver.WriteData("deps.bin", content);
        Assert.True((await saver.SaveAsync(Cache.BaseAddress, Cache.Mint(repo), protocol, "to-corrupt")).Id > 0);
        await using (var scope = Cache.App.Services.CreateAsyncScope())
        {
            var entry = await scope.ServiceProvider.GetRequiredService<CacheDbContext>().Entries.SingleAsync(e => e.Repository == repo);
            var stored = new MemoryStream();
            await Cache.Blobs.CopyToAsync(entry.ObjectKey!, stored);
            var bytes = stored.ToArray();
            bytes[bytes.Length / 2] ^= 0x5A; // same size, one byte flipped: only the hash can tell
            await Cache.Blobs.PutAsync(entry.ObjectKey!, new MemoryStream(bytes), bytes.Length);
        }
        using var restorer = new ActionsToolkitRunner();

        var restored = await restorer.RestoreAsync(Cache.BaseAddress, Cache.Mint(repo), protocol, "to-corrupt");
        var again = await restorer.RestoreAsync(Cache.BaseAddress, Cache.Mint(repo), protocol, "to-corrupt");

        Assert.Null(restored.Hit);
        // The toolkit prints the archive size after a complete download, just before extracting: it never got there.
        Assert.DoesNotContain("Cache Size:", restored.Output, StringComparison.Ordinal);
        Assert.Null(restorer.ReadData("deps.bin"));
        await using (var scope = Cache.App.Services.CreateAsyncScope())
        {
            var entry = await scope.ServiceProvider.GetRequiredService<CacheDbContext>().Entries.SingleAsync(e => e.Repository == repo);
            Assert.Equal(CacheEntryState.Quarantined, entry.State);
        }
        Assert.Null(again.Hit);
        Assert.DoesNotContain("Cache Size:", again.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Azure_sdk_block_uploads_assemble_in_order_and_commit_with_their_hash()
    {
        var repo = NewRepository();
        var job = new CacheProtocolClient(Cache.Client, Cache.Mint(repo));
        var content = RandomNumberGenerator.GetBytes(1_000_000);
        using var runner = new ActionsToolkitRunner();
        var file = Path.Combine(runner.Workspace, "archive.tzst");
        await File.WriteAllBytesAsync(file, content);
        var uploadUrl = await job.CreateAsync("blocks", "v-blocks");

        var uploaded = await runner.UploadBlocksAsync(uploadUrl, file, 64 * 1024);
        using var finalized = await job.TwirpAsync("FinalizeCacheEntryUpload",
            new { key = "blocks", version = "v-blocks", size_bytes = content.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), sha256 = CacheProtocolClient.Sha256(content) });
        var hit = await job.LookupV2Async("blocks", "v-blocks");

        Assert.True(uploaded.Error is null, uploaded.Output);
        finalized.EnsureSuccessStatusCode();
        Assert.NotNull(hit);
        using var download = await Cache.Client.GetAsync(hit.Value.Url);
        Assert.Equal(content, await download.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Azure_sdk_upload_with_a_tampered_url_is_refused_and_nothing_is_staged()
    {
        var job = new CacheProtocolClient(Cache.Client, Cache.Mint(NewRepository()));
        using var runner = new ActionsToolkitRunner();
        var file = Path.Combine(runner.Workspace, "archive.tzst");
        await File.WriteAllBytesAsync(file, new byte[10_000]);
        var uploadUrl = await job.CreateAsync("tampered", "v");
        var tampered = uploadUrl.Replace("&sig=", "&sig=x", StringComparison.Ordinal);

        var uploaded = await runner.UploadBlocksAsync(tampered, file, 4096);
        using var finalized = await job.TwirpAsync("FinalizeCacheEntryUpload", new { key = "tampered", version = "v", size_bytes = "10000" });

        Assert.Equal(403, uploaded.Result.GetProperty("status").GetInt32());
        await ProblemAssert.IsProblemAsync(finalized, System.Net.HttpStatusCode.Conflict);
    }
}
