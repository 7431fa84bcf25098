using System.Security.Cryptography;
using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.RunnerAgent.Caching;
using Microsoft.AspNetCore.TestHost;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>The runner agent's job caches against the real cache (S3 emulator, Postgres): the data path a job spec's caches take.</summary>
public sealed class AgentCachesTests : IAsyncLifetime
{
    private CacheTestApp _cache = null!;
    private readonly List<string> _workspaces = [];

    public async Task InitializeAsync() => _cache = await CacheTestApp.StartAsync(64L * 1024 * 1024);

    public async Task DisposeAsync()
    {
        await _cache.DisposeAsync();
        foreach (var ws in _workspaces) Directory.Delete(ws, recursive: true);
    }

    private (JobCaches Caches, string Workspace) Job(string repository, string gitRef = "refs/heads/main", int? blockSize = null)
    {
        var workspace = Directory.CreateTempSubdirectory("eci-it-agent-ws-").FullName;
        _workspaces.Add(workspace);
        // The test server's client, as the agent's socket client would be: signed URLs are followed by path.
        var http = _cache.App.GetTestClient();
        var token = _cache.Mint(repository, gitRef: gitRef);
        var client = blockSize is { } size ? new CacheServiceClient(http, token) { BlockSize = size } : new CacheServiceClient(http, token);
        return (new JobCaches(client, workspace), workspace);
    }

    private static CacheSpec Spec(string key, params string[] restoreKeys) => new() { Key = key, RestoreKeys = restoreKeys, Paths = ["deps"] };

    [Fact]
    public async Task Miss_then_save_then_hit_restores_the_files_into_a_fresh_workspace()
    {
        var repo = $"acme/agent-{Guid.NewGuid():N}";
        var (first, ws1) = Job(repo);
        var content = RandomNumberGenerator.GetBytes(200_000);
        Directory.CreateDirectory(Path.Combine(ws1, "deps", "pkg"));
        await File.WriteAllBytesAsync(Path.Combine(ws1, "deps", "pkg", "lib.bin"), content);

        var miss = Assert.Single(await first.RestoreAsync([Spec("deps-abc", "deps-")], CancellationToken.None));
        var saved = Assert.Single(await first.SaveAsync([Spec("deps-abc")], CancellationToken.None));
        var (second, ws2) = Job(repo);
        var hit = Assert.Single(await second.RestoreAsync([Spec("deps-xyz", "deps-")], CancellationToken.None));
        var again = Assert.Single(await second.SaveAsync([Spec("deps-abc")], CancellationToken.None));

        Assert.Equal("miss", miss.Result);
        Assert.Equal("saved", saved.Result);
        Assert.True(saved.Bytes > 0);
        Assert.Equal(("hit", "deps-abc"), (hit.Result, hit.MatchedKey));
        Assert.Equal(content, await File.ReadAllBytesAsync(Path.Combine(ws2, "deps", "pkg", "lib.bin")));
        Assert.Equal("skipped (already cached)", again.Result);

        // Restored by its own key: nothing to save (the entry is immutable), so no archive is even made.
        var (third, _) = Job(repo);
        var exact = Assert.Single(await third.RestoreAsync([Spec("deps-abc")], CancellationToken.None));
        var skipped = Assert.Single(await third.SaveAsync([Spec("deps-abc")], CancellationToken.None));
        Assert.Equal(("hit", "deps-abc"), (exact.Result, exact.MatchedKey));
        Assert.Equal((JobCaches.SkippedExactHit, 0L), (skipped.Result, skipped.Bytes));
    }

    [Fact]
    public async Task Archives_above_the_block_size_upload_in_blocks_and_restore_whole()
    {
        var repo = $"acme/agent-{Guid.NewGuid():N}";
        var (first, ws1) = Job(repo, blockSize: 16 * 1024);
        var content = RandomNumberGenerator.GetBytes(150_000);
        Directory.CreateDirectory(Path.Combine(ws1, "deps"));
        await File.WriteAllBytesAsync(Path.Combine(ws1, "deps", "random.bin"), content);

        var saved = Assert.Single(await first.SaveAsync([Spec("blocks")], CancellationToken.None));
        var (second, ws2) = Job(repo);
        var hit = Assert.Single(await second.RestoreAsync([Spec("blocks")], CancellationToken.None));

        Assert.True(saved.Bytes > 16 * 1024, saved.ToString());
        Assert.Equal("hit", hit.Result);
        Assert.Equal(content, await File.ReadAllBytesAsync(Path.Combine(ws2, "deps", "random.bin")));
    }

    [Fact]
    public async Task A_corrupted_entry_is_a_failed_restore_and_nothing_is_extracted()
    {
        var repo = $"acme/agent-{Guid.NewGuid():N}";
        var (first, ws1) = Job(repo);
        Directory.CreateDirectory(Path.Combine(ws1, "deps"));
        await File.WriteAllBytesAsync(Path.Combine(ws1, "deps", "big.bin"), RandomNumberGenerator.GetBytes(300_000));
        Assert.Equal("saved", Assert.Single(await first.SaveAsync([Spec("corrupt")], CancellationToken.None)).Result);
        await using (var scope = _cache.App.Services.CreateAsyncScope())
        {
            var entry = await scope.ServiceProvider.GetRequiredService<CacheDbContext>().Entries.SingleAsync(e => e.Repository == repo);
            var bytes = new byte[entry.SizeBytes];
            await _cache.Blobs.PutAsync(entry.ObjectKey!, new MemoryStream(bytes), bytes.Length);
        }
        var (second, ws2) = Job(repo);

        var restored = Assert.Single(await second.RestoreAsync([Spec("corrupt")], CancellationToken.None));

        Assert.Equal("failed", restored.Result);
        Assert.Empty(Directory.EnumerateFileSystemEntries(ws2));
        // The agent's own check failed on its unchecked download, so it asked again through the cache's checked GET,
        // which quarantined the entry: no later job downloads it.
        await using (var scope = _cache.App.Services.CreateAsyncScope())
        {
            var entry = await scope.ServiceProvider.GetRequiredService<CacheDbContext>().Entries.SingleAsync(e => e.Repository == repo);
            Assert.Equal(CacheEntryState.Quarantined, entry.State);
        }
    }

    /// <summary>
    /// Issue 14 item 8 over the real cache: a job of the repository saves a hand-made archive whose members each pass a
    /// lexical check (<c>a -> .</c>, <c>a/b -> ../{outside}</c>, <c>a/b/planted</c>). The next job's restore fails and
    /// nothing lands next to its workspace.
    /// </summary>
    [Fact]
    public async Task A_link_chain_archive_fails_the_restore_and_writes_nothing_outside_the_workspace()
    {
        var repo = $"acme/agent-{Guid.NewGuid():N}";
        var outside = Directory.CreateTempSubdirectory("eci-it-outside-").FullName;
        _workspaces.Add(outside);
        var spec = Spec("deps-poisoned");
        var archive = Path.Combine(Path.GetTempPath(), $"eci-it-{Guid.NewGuid():N}.tzst");
        try
        {
            await using (var file = File.Create(archive))
            await using (var zstd = new ZstdSharp.CompressionStream(file))
            await using (var tar = new System.Formats.Tar.TarWriter(zstd, System.Formats.Tar.TarEntryFormat.Pax))
            {
                await tar.WriteEntryAsync(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.SymbolicLink, "a") { LinkName = "." });
                await tar.WriteEntryAsync(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.SymbolicLink, "a/b") { LinkName = $"../{Path.GetFileName(outside)}" });
                await tar.WriteEntryAsync(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, "a/b/planted") { DataStream = new MemoryStream("pwned"u8.ToArray()) });
            }
            string sha256;
            await using (var file = File.OpenRead(archive)) sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(file));
            var attacker = new CacheServiceClient(_cache.App.GetTestClient(), _cache.Mint(repo));
            Assert.True(await attacker.SaveAsync(spec.Key!, JobCaches.VersionOf(spec), archive, sha256, CancellationToken.None));
        }
        finally
        {
            File.Delete(archive);
        }
        var (victim, workspace) = Job(repo);

        var restore = Assert.Single(await victim.RestoreAsync([spec], CancellationToken.None));

        Assert.Equal("failed", restore.Result);
        Assert.Contains("out of the workspace", restore.Error);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
        Assert.Empty(Directory.EnumerateFileSystemEntries(workspace));
    }
}
