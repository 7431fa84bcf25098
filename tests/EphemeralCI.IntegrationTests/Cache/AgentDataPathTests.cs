using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Cache.Storage;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.RunnerAgent.Caching;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.AspNetCore.TestHost;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// The runner agent's large-archive transfers against the real cache on the S3 emulator: parallel block uploads with a
/// retried block, parallel range downloads, downloads resumed after a broken connection, presigned direct downloads
/// it verifies itself, and the janitor aborting the multipart upload of a save that never committed.
/// </summary>
public sealed class AgentDataPathTests : IAsyncLifetime
{
    private const int MiB = 1024 * 1024;
    private RecordingS3Store _store = null!;
    private CacheTestApp _cache = null!;
    private CacheTestApp _direct = null!;
    private readonly List<string> _workspaces = [];

    public async Task InitializeAsync()
    {
        _cache = await CacheTestApp.StartAsync(256L * MiB, services: RecordingS3Store.Register(store => _store = store));
        _direct = await CacheTestApp.StartAsync(256L * MiB, settings: new Dictionary<string, string?> { ["Cache:DirectDownloads"] = "true" });
    }

    public async Task DisposeAsync()
    {
        await _cache.DisposeAsync();
        await _direct.DisposeAsync();
        foreach (var ws in _workspaces) Directory.Delete(ws, recursive: true);
    }

    private (JobCaches Caches, string Workspace, FaultInjector Faults) Job(CacheTestApp app, string repository, int parallelism = 4)
    {
        var workspace = Directory.CreateTempSubdirectory("eci-it-agent-path-").FullName;
        _workspaces.Add(workspace);
        var faults = new FaultInjector { InnerHandler = app.App.GetTestServer().CreateHandler() };
        var http = new HttpClient(faults) { BaseAddress = app.App.GetTestServer().BaseAddress };
        var client = new CacheServiceClient(http, app.Mint(repository))
        {
            BlockSize = 5 * MiB, Parallelism = parallelism, RangeThreshold = 4 * MiB, RangeSize = 3 * MiB,
        };
        return (new JobCaches(client, workspace), workspace, faults);
    }

    private static CacheSpec Spec(string key) => new() { Key = key, RestoreKeys = [], Paths = ["deps"] };

    private static async Task<byte[]> FillAsync(string workspace, int bytes)
    {
        var content = RandomNumberGenerator.GetBytes(bytes);
        Directory.CreateDirectory(Path.Combine(workspace, "deps"));
        await File.WriteAllBytesAsync(Path.Combine(workspace, "deps", "random.bin"), content);
        return content;
    }

    private async Task<CacheEntry> EntryAsync(CacheTestApp app, string repository)
    {
        await using var scope = app.App.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<CacheDbContext>().Entries.AsNoTracking().SingleAsync(e => e.Repository == repository);
    }

    [Fact]
    public async Task Blocks_go_up_in_parallel_a_failed_block_is_retried_and_ranges_come_down_in_parallel()
    {
        var repo = $"acme/parallel-{Guid.NewGuid():N}";
        var (first, ws1, faults) = Job(_cache, repo);
        var content = await FillAsync(ws1, 23 * MiB);
        faults.FailNextBlockPut = true;
        var staged = false;
        faults.BeforeFinalize = () => staged = Directory.GetFiles(_cache.SpoolDirectory, "multipart", SearchOption.AllDirectories).Length > 0;

        var saved = Assert.Single(await first.SaveAsync([Spec("parallel")], CancellationToken.None));
        var (second, ws2, downloads) = Job(_cache, repo);
        var hit = Assert.Single(await second.RestoreAsync([Spec("parallel")], CancellationToken.None));

        Assert.Equal("saved", saved.Result);
        Assert.True(faults.FailedBlockPuts == 1, "one block upload was refused once");
        Assert.True(staged, "the blocks were forwarded as parts of a multipart upload");
        // The object was made by completing the multipart upload, not by a second upload from the spool.
        var objectKey = (await EntryAsync(_cache, repo)).ObjectKey!;
        Assert.Contains(objectKey, _store.Completed);
        Assert.DoesNotContain(objectKey, _store.Put);
        Assert.True(faults.MaxConcurrentBlockPuts > 1, $"blocks were uploaded one at a time ({faults.MaxConcurrentBlockPuts})");
        Assert.Equal("hit", hit.Result);
        Assert.Equal(content, await File.ReadAllBytesAsync(Path.Combine(ws2, "deps", "random.bin")));
        Assert.True(downloads.Ranges.Count >= 2, "the archive came down in ranges");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_download_cut_off_midway_resumes_where_it_stopped(bool ranges)
    {
        var repo = $"acme/resume-{Guid.NewGuid():N}";
        var (first, ws1, _) = Job(_cache, repo);
        var content = await FillAsync(ws1, 9 * MiB);
        Assert.Equal("saved", Assert.Single(await first.SaveAsync([Spec("resume")], CancellationToken.None)).Result);
        var (second, ws2, faults) = Job(_cache, repo, parallelism: ranges ? 4 : 1);
        faults.CutNextDownloadAfter = 2 * MiB + 123;

        var hit = Assert.Single(await second.RestoreAsync([Spec("resume")], CancellationToken.None));

        Assert.Equal("hit", hit.Result);
        Assert.Equal(content, await File.ReadAllBytesAsync(Path.Combine(ws2, "deps", "random.bin")));
        Assert.True(faults.CutDownloads == 1, "one download was cut off");
        // The retry asked only for what was missing.
        Assert.Contains(faults.Ranges, r => r.From % (3 * MiB) == 2 * MiB + 123 || r.From == 2 * MiB + 123);
    }

    [Fact]
    public async Task A_resume_answered_with_the_whole_archive_starts_the_file_over()
    {
        var repo = $"acme/no-resume-{Guid.NewGuid():N}";
        var (first, ws1, _) = Job(_cache, repo);
        var content = await FillAsync(ws1, 3 * MiB);
        Assert.Equal("saved", Assert.Single(await first.SaveAsync([Spec("no-resume")], CancellationToken.None)).Result);
        var (second, ws2, faults) = Job(_cache, repo, parallelism: 1);
        faults.CutNextDownloadAfter = MiB + 77;
        faults.IgnoreRanges = true;

        var hit = Assert.Single(await second.RestoreAsync([Spec("no-resume")], CancellationToken.None));

        Assert.Equal("hit", hit.Result);
        Assert.Equal(content, await File.ReadAllBytesAsync(Path.Combine(ws2, "deps", "random.bin")));
        Assert.Contains(faults.Ranges, r => r.From == MiB + 77); // it asked to resume, and got everything again
    }

    [Fact]
    public async Task A_corrupted_entry_downloaded_in_ranges_is_never_extracted_and_is_quarantined()
    {
        var repo = $"acme/ranged-corrupt-{Guid.NewGuid():N}";
        var (first, ws1, _) = Job(_cache, repo);
        await FillAsync(ws1, 8 * MiB);
        Assert.Equal("saved", Assert.Single(await first.SaveAsync([Spec("corrupt")], CancellationToken.None)).Result);
        var entry = await EntryAsync(_cache, repo);
        var garbage = RandomNumberGenerator.GetBytes((int)entry.SizeBytes);
        await _cache.Blobs.PutAsync(entry.ObjectKey!, new MemoryStream(garbage), garbage.Length);
        var (second, ws2, faults) = Job(_cache, repo);

        var restored = Assert.Single(await second.RestoreAsync([Spec("corrupt")], CancellationToken.None));

        Assert.Equal("failed", restored.Result);
        Assert.True(faults.Ranges.Count >= 2, "it was downloaded in ranges first");
        Assert.Empty(Directory.EnumerateFileSystemEntries(ws2));
        Assert.Equal(CacheEntryState.Quarantined, (await EntryAsync(_cache, repo)).State);
    }

    [Fact]
    public async Task A_presigned_direct_download_is_used_and_verified_by_the_agent()
    {
        var repo = $"acme/direct-{Guid.NewGuid():N}";
        var (first, ws1, _) = Job(_direct, repo);
        var content = await FillAsync(ws1, 6 * MiB);
        Assert.Equal("saved", Assert.Single(await first.SaveAsync([Spec("direct")], CancellationToken.None)).Result);
        var (second, ws2, viaCache) = Job(_direct, repo);

        var hit = Assert.Single(await second.RestoreAsync([Spec("direct")], CancellationToken.None));

        Assert.Equal("hit", hit.Result);
        Assert.Equal(content, await File.ReadAllBytesAsync(Path.Combine(ws2, "deps", "random.bin")));
        Assert.Empty(viaCache.BlobGets);

        // A corrupted object fails the agent's check; the fallback through the cache finds and quarantines it.
        var entry = await EntryAsync(_direct, repo);
        var garbage = RandomNumberGenerator.GetBytes((int)entry.SizeBytes);
        await _direct.Blobs.PutAsync(entry.ObjectKey!, new MemoryStream(garbage), garbage.Length);
        var (third, ws3, fallback) = Job(_direct, repo);
        var corrupted = Assert.Single(await third.RestoreAsync([Spec("direct")], CancellationToken.None));

        Assert.Equal("failed", corrupted.Result);
        Assert.Empty(Directory.EnumerateFileSystemEntries(ws3));
        Assert.NotEmpty(fallback.BlobGets);
        Assert.Equal(CacheEntryState.Quarantined, (await EntryAsync(_direct, repo)).State);
    }

    [Fact]
    public async Task The_janitor_aborts_the_multipart_upload_of_a_save_that_never_committed()
    {
        var repo = $"acme/abandoned-{Guid.NewGuid():N}";
        var job = new CacheProtocolClient(_cache.Client, _cache.Mint(repo));
        var url = await job.CreateAsync("abandoned", "v1");
        (await job.PutBlockAsync(url, "blk-000000", RandomNumberGenerator.GetBytes(5 * MiB))).EnsureSuccessStatusCode();
        var entry = await EntryAsync(_cache, repo);
        var upload = _cache.Service<UploadStaging>().PendingMultipart(entry.Id);
        Assert.NotNull(upload);
        await using (var scope = _cache.App.Services.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<CacheDbContext>().Entries.Where(e => e.Id == entry.Id)
                .ExecuteUpdateAsync(s => s.SetProperty(e => e.CreatedAt, DateTimeOffset.UtcNow.AddDays(-1)));
        }

        var report = await _cache.Service<CacheJanitor>().SweepAsync(CancellationToken.None);

        Assert.True(report.AbandonedUploads >= 1, report.ToString());
        Assert.Contains((upload.ObjectKey, upload.UploadId), _store.Aborted);
        Assert.False(Directory.Exists(_cache.Service<UploadStaging>().DirectoryOf(entry.Id)));
    }

    /// <summary>Between the agent and the cache: refuses a block upload once, cuts a download short once, and records what passed.</summary>
    private sealed class FaultInjector : DelegatingHandler
    {
        private int _blockPutsInFlight;

        public bool FailNextBlockPut { get; set; }
        public long? CutNextDownloadAfter { get; set; }
        /// <summary>Drops the Range header of downloads: a server (or proxy) that answers every GET with the whole archive.</summary>
        public bool IgnoreRanges { get; set; }
        public Action? BeforeFinalize { get; set; }
        public int FailedBlockPuts { get; private set; }
        public int CutDownloads { get; private set; }
        public int MaxConcurrentBlockPuts { get; private set; }
        public ConcurrentQueue<(long From, long? To)> Ranges { get; } = new();
        public ConcurrentQueue<string> BlobGets { get; } = new();

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var query = request.RequestUri!.ToString();
            if (query.Contains("FinalizeCacheEntryUpload", StringComparison.Ordinal)) BeforeFinalize?.Invoke();
            if (request.Method == HttpMethod.Put && query.Contains("comp=block&", StringComparison.Ordinal))
            {
                lock (this)
                {
                    if (FailNextBlockPut)
                    {
                        FailNextBlockPut = false;
                        FailedBlockPuts++;
                        return new HttpResponseMessage(HttpStatusCode.ServiceUnavailable) { Content = new StringContent("injected") };
                    }
                    MaxConcurrentBlockPuts = Math.Max(MaxConcurrentBlockPuts, ++_blockPutsInFlight);
                }
                try
                {
                    return await base.SendAsync(request, cancellationToken);
                }
                finally
                {
                    lock (this) _blockPutsInFlight--;
                }
            }
            if (request.Method != HttpMethod.Get || !query.Contains("cache/blobs/", StringComparison.Ordinal)) return await base.SendAsync(request, cancellationToken);

            BlobGets.Enqueue(query);
            if (request.Headers.Range?.Ranges.SingleOrDefault() is { From: { } from } range) Ranges.Enqueue((from, range.To));
            if (IgnoreRanges) request.Headers.Range = null;
            var response = await base.SendAsync(request, cancellationToken);
            long? cut;
            lock (this)
            {
                // Only a response long enough to be cut (ranges run in parallel; the short last one may come first).
                cut = CutNextDownloadAfter is { } armed && response.Content.Headers.ContentLength > armed ? armed : null;
                if (cut is not null)
                {
                    CutNextDownloadAfter = null;
                    CutDownloads++;
                }
            }
            if (cut is { } after && response.IsSuccessStatusCode)
            {
                var body = await response.Content.ReadAsStreamAsync(cancellationToken);
                var headers = response.Content.Headers.ToList();
                response.Content = new StreamContent(new CuttingStream(body, after));
                foreach (var (name, values) in headers) response.Content.Headers.TryAddWithoutValidation(name, values);
            }
            return response;
        }
    }

    /// <summary>A body that breaks like a dropped connection after some bytes.</summary>
    private sealed class CuttingStream(Stream inner, long after) : Stream
    {
        private long _read;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_read >= after) throw new IOException("injected: connection reset");
            var read = await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, after - _read)], cancellationToken);
            _read += read;
            return read;
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _read; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
