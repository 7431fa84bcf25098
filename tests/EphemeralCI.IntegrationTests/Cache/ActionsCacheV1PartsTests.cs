using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// v1 saves (PATCH chunks with Content-Range, then commit) on the S3 emulator: chunks that line up as parts go up as
/// a multipart upload while they arrive, so commit only completes it; chunks that do not are stored from the spool
/// at commit as before; an abandoned save's multipart upload is aborted by the janitor. On real Kestrel, so the
/// real toolkit can save through it too.
/// </summary>
public sealed class ActionsCacheV1PartsTests : IAsyncLifetime
{
    private const string Version = "3b1d5e7f9a2c4e6b8d0f1a3c5e7b9d2f4a6c8e0b1d3f5a7c9e2b4d6f8a0c1e3b";
    private const int MiB = 1024 * 1024;
    /// <summary>The client's chunk size in these tests: over S3's 5 MiB part minimum, small enough to keep the tests quick.</summary>
    private const int ChunkSize = 6 * MiB;
    private RecordingS3Store _store = null!;
    private CacheTestApp _s3 = null!;
    private CacheTestApp _folder = null!;

    public async Task InitializeAsync()
    {
        _s3 = await CacheTestApp.StartAsync(256L * MiB, kestrel: true, services: RecordingS3Store.Register(store => _store = store));
        _folder = await CacheTestApp.StartAsync(256L * MiB, fileSystem: true);
    }

    public async Task DisposeAsync()
    {
        await _s3.DisposeAsync();
        await _folder.DisposeAsync();
    }

    private static string NewRepository() => $"acme/v1-parts-{Guid.NewGuid():N}";

    private static (long Offset, byte[] Bytes) Chunk(byte[] content, long offset, int length) => (offset, content[(int)offset..(int)(offset + length)]);

    /// <summary>The archive cut as the toolkit cuts it: equal chunks, the last one shorter.</summary>
    private static List<(long Offset, byte[] Bytes)> Chunks(byte[] content, int size) =>
        Enumerable.Range(0, (content.Length + size - 1) / size).Select(i => Chunk(content, (long)i * size, Math.Min(size, content.Length - i * size))).ToList();

    /// <summary>PATCHes the chunks all at once (in the order given, so the server sees them out of order).</summary>
    private static async Task PatchAllAsync(CacheProtocolClient job, long id, IEnumerable<(long Offset, byte[] Bytes)> chunks)
    {
        var patches = await Task.WhenAll(chunks.Select(c => job.PatchV1Async(id, c.Bytes, c.Offset)));
        foreach (var patch in patches)
        {
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
            patch.Dispose();
        }
    }

    private List<(int Number, long Length)> PartsOf(string objectKey) =>
        _store.Parts.Where(p => p.Key == objectKey).Select(p => (p.PartNumber, p.Length)).OrderBy(p => p.PartNumber).ToList();

    private static async Task<CacheEntry?> EntryAsync(CacheTestApp app, string repository, string key)
    {
        await using var scope = app.App.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<CacheDbContext>().Entries.AsNoTracking().SingleOrDefaultAsync(e => e.Repository == repository && e.Key == key);
    }

    /// <summary>v1 restore as the toolkit does it: look up, then download the archive location; null on a miss.</summary>
    private static async Task<byte[]?> RestoreV1Async(CacheTestApp app, CacheProtocolClient job, string key)
    {
        using var lookup = await job.V1Async(HttpMethod.Get, $"cache?keys={key}&version={Version}");
        if (lookup.StatusCode == HttpStatusCode.NoContent) return null;
        lookup.EnsureSuccessStatusCode();
        var location = (await lookup.Content.ReadFromJsonAsync<JsonObject>())!["archiveLocation"]!.GetValue<string>();
        using var download = await app.Client.GetAsync(location);
        download.EnsureSuccessStatusCode();
        return await download.Content.ReadAsByteArrayAsync();
    }

    [Fact]
    public async Task Chunks_sent_in_parallel_and_out_of_order_go_up_as_parts_and_commit_only_completes_them()
    {
        var repo = NewRepository();
        var job = new CacheProtocolClient(_s3.Client, _s3.Mint(repo));
        var content = RandomNumberGenerator.GetBytes(4 * ChunkSize + MiB + 123);
        var chunks = Chunks(content, ChunkSize);
        var id = await job.ReserveV1Async("parts", Version, content.Length);

        // A middle chunk first (its length and the announced size give the part size), then all the others at once.
        await PatchAllAsync(job, id, [chunks[2]]);
        await PatchAllAsync(job, id, [chunks[4], chunks[0], chunks[3], chunks[1]]);
        var upload = _s3.Service<UploadStaging>().PendingMultipart(id);
        Assert.NotNull(upload);
        var forwarded = PartsOf(upload.ObjectKey);
        using var committed = await job.CommitV1Async(id, content.Length, CacheProtocolClient.Sha256(content));

        Assert.Equal(HttpStatusCode.NoContent, committed.StatusCode);
        // Each chunk went up as its part while it arrived; commit uploaded nothing more and made the object from the parts.
        Assert.Equal([(1, ChunkSize), (2, ChunkSize), (3, ChunkSize), (4, ChunkSize), (5, MiB + 123)], forwarded);
        Assert.Equal(forwarded, PartsOf(upload.ObjectKey));
        Assert.Contains(upload.ObjectKey, _store.Completed);
        Assert.DoesNotContain(upload.ObjectKey, _store.Put);
        var entry = (await EntryAsync(_s3, repo, "parts"))!;
        Assert.Equal(upload.ObjectKey, entry.ObjectKey);
        Assert.Equal(CacheProtocolClient.Sha256(content), entry.Sha256);
        Assert.Equal(content, await RestoreV1Async(_s3, job, "parts"));
        Assert.False(Directory.Exists(_s3.Service<UploadStaging>().DirectoryOf(id)));
    }

    [Fact]
    public async Task An_archive_made_from_parts_is_still_checked_against_the_declared_sha256()
    {
        var repo = NewRepository();
        var job = new CacheProtocolClient(_s3.Client, _s3.Mint(repo));
        var content = RandomNumberGenerator.GetBytes(2 * ChunkSize + 1000);
        var id = await job.ReserveV1Async("lying", Version, content.Length);
        await PatchAllAsync(job, id, Chunks(content, ChunkSize));
        var upload = _s3.Service<UploadStaging>().PendingMultipart(id);
        Assert.NotNull(upload);

        using var committed = await job.CommitV1Async(id, content.Length, CacheProtocolClient.Sha256(content[1..]));

        await ProblemAssert.IsProblemAsync(committed, HttpStatusCode.BadRequest, "sha256");
        Assert.Contains(upload.ObjectKey, _store.Completed);
        Assert.Null(await _s3.Blobs.StatAsync(upload.ObjectKey));
        Assert.Null(await EntryAsync(_s3, repo, "lying"));
        Assert.Null(await RestoreV1Async(_s3, job, "lying"));
    }

    public static TheoryData<string, (int Offset, int Length)[], bool> Misfits => new()
    {
        // Every chunk under S3's 5 MiB minimum: no multipart upload at all.
        { "small chunks", [(0, MiB), (MiB, MiB), (2 * MiB, MiB), (3 * MiB, MiB), (4 * MiB, 1000)], true },
        { "unequal chunks", [(0, ChunkSize), (ChunkSize, ChunkSize + MiB), (2 * ChunkSize + MiB, 2 * MiB)], true },
        // Without a size at reserve the short chunk might be the last: it goes up, and the chunk after it does not fit.
        { "a short middle chunk, no size announced", [(0, ChunkSize), (ChunkSize, 2 * MiB), (ChunkSize + 2 * MiB, ChunkSize)], false },
        { "an overlapping chunk", [(0, ChunkSize), (ChunkSize, ChunkSize), (ChunkSize / 2, ChunkSize)], true },
    };

    [Theory]
    [MemberData(nameof(Misfits))]
    public async Task Chunks_that_do_not_line_up_as_parts_are_stored_from_the_spool_and_restore_the_same(string layout, (int Offset, int Length)[] layoutChunks, bool announceSize)
    {
        var repo = NewRepository();
        var job = new CacheProtocolClient(_s3.Client, _s3.Mint(repo));
        var content = RandomNumberGenerator.GetBytes(layoutChunks.Max(c => c.Offset + c.Length));
        var id = await job.ReserveV1Async("misfit", Version, announceSize ? content.Length : null);

        await PatchAllAsync(job, id, Enumerable.Reverse(layoutChunks).Select(c => Chunk(content, c.Offset, c.Length)));
        var upload = _s3.Service<UploadStaging>().PendingMultipart(id);
        using var committed = await job.CommitV1Async(id, content.Length, CacheProtocolClient.Sha256(content));

        Assert.True(HttpStatusCode.NoContent == committed.StatusCode, $"{layout}: {await committed.Content.ReadAsStringAsync()}");
        var entry = (await EntryAsync(_s3, repo, "misfit"))!;
        Assert.Contains(entry.ObjectKey, _store.Put);
        Assert.DoesNotContain(entry.ObjectKey, _store.Completed);
        // Parts that went up before the layout showed it could not work were dropped with their upload.
        if (upload is not null) Assert.Contains((upload.ObjectKey, upload.UploadId), _store.Aborted);
        Assert.Equal(CacheProtocolClient.Sha256(content), entry.Sha256);
        Assert.Equal(content, await RestoreV1Async(_s3, job, "misfit"));
    }

    [Fact]
    public async Task On_a_store_without_multipart_uploads_aligned_chunks_are_stored_from_the_spool()
    {
        var repo = NewRepository();
        var job = new CacheProtocolClient(_folder.Client, _folder.Mint(repo));
        var content = RandomNumberGenerator.GetBytes(2 * ChunkSize + 5000);
        var id = await job.ReserveV1Async("folder", Version, content.Length);
        await PatchAllAsync(job, id, Enumerable.Reverse(Chunks(content, ChunkSize)));

        using var committed = await job.CommitV1Async(id, content.Length, CacheProtocolClient.Sha256(content));

        Assert.Equal(HttpStatusCode.NoContent, committed.StatusCode);
        Assert.Equal(CacheProtocolClient.Sha256(content), (await EntryAsync(_folder, repo, "folder"))!.Sha256);
        Assert.Equal(content, await RestoreV1Async(_folder, job, "folder"));
    }

    [Fact]
    public async Task The_janitor_aborts_the_multipart_upload_of_a_v1_save_that_never_committed()
    {
        var repo = NewRepository();
        var job = new CacheProtocolClient(_s3.Client, _s3.Mint(repo));
        var content = RandomNumberGenerator.GetBytes(2 * ChunkSize);
        var id = await job.ReserveV1Async("abandoned", Version, content.Length);
        await PatchAllAsync(job, id, [Chunk(content, 0, ChunkSize)]);
        var upload = _s3.Service<UploadStaging>().PendingMultipart(id);
        Assert.NotNull(upload);
        Assert.Equal([(1, (long)ChunkSize)], PartsOf(upload.ObjectKey));
        await using (var scope = _s3.App.Services.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<CacheDbContext>().Entries.Where(e => e.Id == id)
                .ExecuteUpdateAsync(s => s.SetProperty(e => e.CreatedAt, DateTimeOffset.UtcNow.AddDays(-1)));
        }

        var report = await _s3.Service<CacheJanitor>().SweepAsync(CancellationToken.None);

        Assert.True(report.AbandonedUploads >= 1, report.ToString());
        Assert.Contains((upload.ObjectKey, upload.UploadId), _store.Aborted);
        Assert.False(Directory.Exists(_s3.Service<UploadStaging>().DirectoryOf(id)));
        Assert.Null(await EntryAsync(_s3, repo, "abandoned"));
    }

    [Fact]
    public async Task The_real_toolkits_v1_chunks_go_up_as_parts()
    {
        var repo = NewRepository();
        var content = RandomNumberGenerator.GetBytes(13 * MiB);
        using var saver = new ActionsToolkitRunner();
        saver.WriteData("deps.bin", content);
        using var restorer = new ActionsToolkitRunner();

        // 5 MiB chunks (the toolkit's setting is in MiB): three chunks, sent at once, the last one shorter.
        var saved = await saver.SaveAsync(_s3.BaseAddress, _s3.Mint(repo), "v1", "deps-parts", new Dictionary<string, string> { ["CACHE_UPLOAD_CHUNK_SIZE"] = "5" });
        var restored = await restorer.RestoreAsync(_s3.BaseAddress, _s3.Mint(repo), "v1", "deps-parts");

        Assert.True(saved.Id > 0, saved.Output);
        Assert.Contains("Cache saved successfully", saved.Output, StringComparison.Ordinal);
        var entry = (await EntryAsync(_s3, repo, "deps-parts"))!;
        var parts = PartsOf(entry.ObjectKey!);
        Assert.True(parts.Count >= 3 && parts.Take(parts.Count - 1).All(p => p.Length == 5 * MiB), string.Join(", ", parts));
        Assert.Equal(Enumerable.Range(1, parts.Count), parts.Select(p => p.Number));
        Assert.Contains(entry.ObjectKey!, _store.Completed);
        Assert.DoesNotContain(entry.ObjectKey!, _store.Put);
        Assert.Equal("deps-parts", restored.Hit);
        Assert.Equal(content, restorer.ReadData("deps.bin"));
    }
}
