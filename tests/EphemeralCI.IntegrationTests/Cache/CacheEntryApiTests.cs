using System.Net;
using System.Net.Http.Headers;
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
/// Entries through both protocols by hand, on the S3 emulator and Postgres: bad input, other jobs'
/// reservations, other repositories, mismatched sizes and hashes, tampered URLs, corrupted objects.
/// Every refusal is a 4xx (or 502 for a corrupted object) problem, and nothing is stored or overwritten.
/// </summary>
public sealed class CacheEntryApiTests : IAsyncLifetime
{
    private const string Version = "0f4c5d7a9b3e1f2a8c6d4e0b7a9f1c3e5d7b9a1c3e5f7d9b1a3c5e7f9d1b3a5c";
    private CacheTestApp _cache = null!;

    public async Task InitializeAsync() => _cache = await CacheTestApp.StartAsync(1024 * 1024,
        settings: new Dictionary<string, string?> { ["Cache:DefaultBranches:acme/legacy"] = "refs/heads/master" });

    public async Task DisposeAsync() => await _cache.DisposeAsync();

    private static string NewRepository() => $"acme/api-{Guid.NewGuid():N}";

    private CacheProtocolClient Job(string repository, string gitRef = "refs/heads/main", Guid? jobId = null, int attempt = 1) =>
        new(_cache.Client, _cache.Mint(repository, gitRef: gitRef, jobId: jobId, attempt: attempt));

    private async Task<List<CacheEntry>> EntriesOfAsync(string repository)
    {
        await using var scope = _cache.App.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<CacheDbContext>().Entries.AsNoTracking().Where(e => e.Repository == repository).ToListAsync();
    }

    private async Task<byte[]> DownloadAsync(string url)
    {
        using var response = await _cache.Client.GetAsync(url);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadAsByteArrayAsync();
    }

    [Fact]
    public async Task V2_save_then_lookup_serves_the_content_and_records_its_sha256()
    {
        var repo = NewRepository();
        var job = Job(repo);
        var content = RandomNumberGenerator.GetBytes(50_000);

        using var finalized = await job.SaveV2Async("k1", Version, content);
        var hit = await job.LookupV2Async("k1", Version);

        finalized.EnsureSuccessStatusCode();
        var body = (await finalized.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.True(body["ok"]!.GetValue<bool>());
        Assert.NotNull(hit);
        Assert.Equal(content, await DownloadAsync(hit.Value.Url));
        var entry = Assert.Single(await EntriesOfAsync(repo));
        Assert.Equal(CacheEntryState.Committed, entry.State);
        Assert.Equal(CacheProtocolClient.Sha256(content), entry.Sha256);
        Assert.Equal(long.Parse(body["entry_id"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture), entry.Id);
    }

    [Theory]
    [InlineData("a,b", "key")]
    [InlineData("../../../etc/passwd", "key")]
    [InlineData("", "key")]
    public async Task Bad_keys_are_refused_by_every_protocol_and_nothing_is_reserved(string key, string field)
    {
        var repo = NewRepository();
        var job = Job(repo);

        using var v2 = await job.TwirpAsync("CreateCacheEntry", new { key, version = Version });
        using var v1 = await job.V1Async(HttpMethod.Post, "caches", JsonContent.Create(new { key, version = Version }));
        using var lookup = await job.TwirpAsync("GetCacheEntryDownloadURL", new { key = "ok", restore_keys = new[] { key }, version = Version });

        var problem = await ProblemAssert.IsProblemAsync(v2, HttpStatusCode.BadRequest, field);
        Assert.Equal("invalid_argument", problem["code"]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(problem["msg"]!.GetValue<string>()));
        await ProblemAssert.IsProblemAsync(v1, HttpStatusCode.BadRequest, field);
        await ProblemAssert.IsProblemAsync(lookup, HttpStatusCode.BadRequest, "restore_keys");
        Assert.Empty(await EntriesOfAsync(repo));
    }

    [Fact]
    public async Task Oversized_key_and_announced_size_are_refused()
    {
        var job = Job(NewRepository());

        using var longKey = await job.TwirpAsync("CreateCacheEntry", new { key = new string('k', 513), version = Version });
        using var tooBig = await job.V1Async(HttpMethod.Post, "caches", JsonContent.Create(new { key = "big", version = Version, cacheSize = 2L * 1024 * 1024 }));
        using var noVersion = await job.V1Async(HttpMethod.Get, "cache?keys=a&version=");

        await ProblemAssert.IsProblemAsync(longKey, HttpStatusCode.BadRequest, "key");
        var problem = await ProblemAssert.IsProblemAsync(tooBig, HttpStatusCode.BadRequest, "cacheSize");
        Assert.Contains("exceeds", problem["message"]!.GetValue<string>());
        await ProblemAssert.IsProblemAsync(noVersion, HttpStatusCode.BadRequest, "version");
    }

    [Fact]
    public async Task Requests_without_a_valid_job_token_are_unauthorized()
    {
        using var none = await _cache.Client.PostAsJsonAsync("twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry", new { key = "k", version = Version });
        var expired = new CacheProtocolClient(_cache.Client, _cache.Mint(NewRepository(), DateTimeOffset.UtcNow.AddMinutes(-10)));
        using var stale = await expired.V1Async(HttpMethod.Get, $"cache?keys=k&version={Version}");

        await ProblemAssert.IsProblemAsync(none, HttpStatusCode.Unauthorized);
        await ProblemAssert.IsProblemAsync(stale, HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Another_jobs_reservation_can_be_neither_taken_nor_written_nor_committed()
    {
        var repo = NewRepository();
        var owner = Job(repo);
        var intruder = Job(repo);
        var stranger = Job(NewRepository());
        var id = await owner.ReserveV1Async("busy", Version);

        using var reserveAgain = await intruder.V1Async(HttpMethod.Post, "caches", JsonContent.Create(new { key = "busy", version = Version }));
        using var createAgain = await intruder.TwirpAsync("CreateCacheEntry", new { key = "busy", version = Version });
        using var patch = await intruder.PatchV1Async(id, [6, 6, 6], 0);
        using var commit = await intruder.CommitV1Async(id, 3);
        using var foreignPatch = await stranger.PatchV1Async(id, [6, 6, 6], 0);
        using var ownPatch = await owner.PatchV1Async(id, [1, 2, 3], 0);
        using var ownCommit = await owner.CommitV1Async(id, 3);

        await ProblemAssert.IsProblemAsync(reserveAgain, HttpStatusCode.Conflict);
        await ProblemAssert.IsProblemAsync(createAgain, HttpStatusCode.Conflict);
        await ProblemAssert.IsProblemAsync(patch, HttpStatusCode.Forbidden);
        await ProblemAssert.IsProblemAsync(commit, HttpStatusCode.Forbidden);
        await ProblemAssert.IsProblemAsync(foreignPatch, HttpStatusCode.NotFound);
        Assert.Equal(HttpStatusCode.NoContent, ownPatch.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, ownCommit.StatusCode);
        var hit = await owner.LookupV2Async("busy", Version);
        Assert.Equal([1, 2, 3], await DownloadAsync(hit!.Value.Url));
    }

    [Fact]
    public async Task V1_chunks_in_any_order_assemble_and_a_wrong_total_size_stores_nothing()
    {
        var repo = NewRepository();
        var job = Job(repo);
        var content = RandomNumberGenerator.GetBytes(30_000);
        var good = await job.ReserveV1Async("chunked", Version, content.Length);
        (await job.PatchV1Async(good, content[20_000..], 20_000)).EnsureSuccessStatusCode();
        (await job.PatchV1Async(good, content[..20_000], 0)).EnsureSuccessStatusCode();
        var bad = await job.ReserveV1Async("short", Version);
        (await job.PatchV1Async(bad, content[..1000], 0)).EnsureSuccessStatusCode();

        using var commitGood = await job.CommitV1Async(good, content.Length, CacheProtocolClient.Sha256(content));
        using var commitBad = await job.CommitV1Async(bad, 5000);
        using var lying = await job.V1Async(HttpMethod.Patch, $"caches/{good}", new ByteArrayContent([1, 2]), "bytes 0-9/*");

        Assert.Equal(HttpStatusCode.NoContent, commitGood.StatusCode);
        await ProblemAssert.IsProblemAsync(commitBad, HttpStatusCode.BadRequest, "size");
        await ProblemAssert.IsProblemAsync(lying, HttpStatusCode.Conflict);
        Assert.Equal(content, await DownloadAsync((await job.LookupV2Async("chunked", Version))!.Value.Url));
        Assert.Null(await job.LookupV2Async("short", Version));
        Assert.Equal(["chunked"], (await EntriesOfAsync(repo)).Select(e => e.Key));
    }

    [Fact]
    public async Task A_hash_that_does_not_match_at_finalize_stores_nothing()
    {
        var repo = NewRepository();
        var job = Job(repo);

        using var finalized = await job.SaveV2Async("hashed", Version, [1, 2, 3], sha256: new string('0', 64));
        using var wrongSize = await job.SaveV2Async("sized", Version, [1, 2, 3], declaredSize: 4);

        await ProblemAssert.IsProblemAsync(finalized, HttpStatusCode.BadRequest, "sha256");
        await ProblemAssert.IsProblemAsync(wrongSize, HttpStatusCode.BadRequest, "size_bytes");
        Assert.Empty(await EntriesOfAsync(repo));
    }

    [Fact]
    public async Task Tampered_or_replayed_signed_urls_are_refused_and_change_nothing()
    {
        var repo = NewRepository();
        var job = Job(repo);
        var uploadUrl = await job.CreateAsync("signed", Version);
        (await job.PutBlobAsync(uploadUrl, [7, 7, 7])).EnsureSuccessStatusCode();
        (await job.TwirpAsync("FinalizeCacheEntryUpload", new { key = "signed", version = Version, size_bytes = "3" })).EnsureSuccessStatusCode();
        var downloadUrl = (await job.LookupV2Async("signed", Version))!.Value.Url;
        var id = (await EntriesOfAsync(repo)).Single().Id;

        using var replayedUpload = await job.PutBlobAsync(uploadUrl, [6, 6, 6]);
        using var otherEntry = await _cache.Client.GetAsync(downloadUrl.Replace($"/blobs/{id}?", $"/blobs/{id + 1}?", StringComparison.Ordinal));
        using var forged = await _cache.Client.GetAsync(downloadUrl[..^4] + (downloadUrl.EndsWith("AAAA", StringComparison.Ordinal) ? "BBBB" : "AAAA"));
        using var uploadAsDownload = await _cache.Client.GetAsync(uploadUrl);
        using var unsigned = await _cache.Client.GetAsync($"cache/blobs/{id}");

        await ProblemAssert.IsProblemAsync(replayedUpload, HttpStatusCode.Conflict);
        await ProblemAssert.IsProblemAsync(otherEntry, HttpStatusCode.Forbidden);
        await ProblemAssert.IsProblemAsync(forged, HttpStatusCode.Forbidden);
        await ProblemAssert.IsProblemAsync(uploadAsDownload, HttpStatusCode.Forbidden);
        await ProblemAssert.IsProblemAsync(unsigned, HttpStatusCode.Forbidden, "sig");
        Assert.Equal([7, 7, 7], await DownloadAsync(downloadUrl));
    }

    [Fact]
    public async Task A_truncated_object_is_reported_quarantined_and_never_served()
    {
        var repo = NewRepository();
        var job = Job(repo);
        (await job.SaveV2Async("truncated", Version, RandomNumberGenerator.GetBytes(10_000))).EnsureSuccessStatusCode();
        var url = (await job.LookupV2Async("truncated", Version))!.Value.Url;
        var entry = (await EntriesOfAsync(repo)).Single();
        await _cache.Blobs.PutAsync(entry.ObjectKey!, new MemoryStream(new byte[5_000]), 5_000);

        using var response = await _cache.Client.GetAsync(url);

        var problem = await ProblemAssert.IsProblemAsync(response, HttpStatusCode.BadGateway);
        Assert.Contains("quarantined", problem["detail"]!.GetValue<string>());
        Assert.Equal(CacheEntryState.Quarantined, (await EntriesOfAsync(repo)).Single().State);
        Assert.Null(await job.LookupV2Async("truncated", Version));
    }

    [Fact]
    public async Task A_corrupted_object_of_the_right_size_never_reaches_the_client_whole()
    {
        var repo = NewRepository();
        var job = Job(repo);
        var content = RandomNumberGenerator.GetBytes(200_000);
        (await job.SaveV2Async("corrupted", Version, content)).EnsureSuccessStatusCode();
        var url = (await job.LookupV2Async("corrupted", Version))!.Value.Url;
        var entry = (await EntriesOfAsync(repo)).Single();
        var corrupted = content.ToArray();
        corrupted[123_456] ^= 0x01;
        await _cache.Blobs.PutAsync(entry.ObjectKey!, new MemoryStream(corrupted), corrupted.Length);

        byte[]? received = null;
        try
        {
            received = await DownloadAsync(url);
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
        }

        Assert.True(received is null || received.Length < content.Length);
        Assert.Equal(CacheEntryState.Quarantined, (await EntriesOfAsync(repo)).Single().State);
        Assert.Null(await job.LookupV2Async("corrupted", Version));
        // A quarantined entry is replaced by the next save.
        (await job.SaveV2Async("corrupted", Version, content)).EnsureSuccessStatusCode();
        Assert.Equal(content, await DownloadAsync((await job.LookupV2Async("corrupted", Version))!.Value.Url));
    }

    [Fact]
    public async Task Default_branch_comes_from_configuration_per_repository()
    {
        var master = Job("acme/legacy", "refs/heads/master");
        var main = Job("acme/legacy", "refs/heads/main");
        var key = "legacy-" + Guid.NewGuid().ToString("N");
        (await master.SaveV2Async(key, Version, [1])).EnsureSuccessStatusCode();
        (await main.SaveV2Async(key + "-main", Version, [2])).EnsureSuccessStatusCode();
        var feature = Job("acme/legacy", "refs/pull/7/merge");

        Assert.Equal(key, (await feature.LookupV2Async(key, Version))?.Key);
        Assert.Null(await feature.LookupV2Async(key + "-main", Version));
    }

    [Fact]
    public async Task Janitor_expires_unused_entries_and_drops_abandoned_uploads()
    {
        var repo = NewRepository();
        var job = Job(repo);
        (await job.SaveV2Async("stale", Version, [1, 2])).EnsureSuccessStatusCode();
        (await job.SaveV2Async("fresh", Version, [3, 4])).EnsureSuccessStatusCode();
        var abandoned = await job.ReserveV1Async("abandoned", Version);
        (await job.PatchV1Async(abandoned, [5, 5], 0)).EnsureSuccessStatusCode();
        var staleObject = (await EntriesOfAsync(repo)).Single(e => e.Key == "stale").ObjectKey!;
        await using (var scope = _cache.App.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<CacheDbContext>();
            var longAgo = DateTimeOffset.UtcNow.AddDays(-8);
            await db.Entries.Where(e => e.Repository == repo && e.Key != "fresh")
                .ExecuteUpdateAsync(s => s.SetProperty(e => e.LastAccessedAt, longAgo).SetProperty(e => e.CreatedAt, longAgo));
        }

        var report = await _cache.Service<CacheJanitor>().SweepAsync(CancellationToken.None);

        Assert.True(report.Expired >= 1 && report.AbandonedUploads >= 1, report.ToString());
        Assert.Equal(["fresh"], (await EntriesOfAsync(repo)).Select(e => e.Key));
        Assert.Null(await _cache.Blobs.StatAsync(staleObject));
        Assert.False(Directory.Exists(_cache.Service<UploadStaging>().DirectoryOf(abandoned)));
    }

    [Fact]
    public async Task Admin_api_needs_its_token_and_lists_and_deletes_entries()
    {
        var repo = NewRepository();
        var job = Job(repo);
        (await job.SaveV2Async("admin-me", Version, new byte[1234])).EnsureSuccessStatusCode();
        using var noToken = await _cache.Client.GetAsync("cache/admin/usage");
        using var jobToken = await _cache.Client.SendAsync(Authorized(HttpMethod.Get, "cache/admin/usage", _cache.Mint(repo)));

        using var usage = await _cache.Client.SendAsync(Authorized(HttpMethod.Get, "cache/admin/usage", CacheTestApp.AdminToken));
        using var scopes = await _cache.Client.SendAsync(Authorized(HttpMethod.Get, "cache/admin/usage/scopes", CacheTestApp.AdminToken));
        using var scopesByJob = await _cache.Client.SendAsync(Authorized(HttpMethod.Get, "cache/admin/usage/scopes", _cache.Mint(repo)));
        using var list = await _cache.Client.SendAsync(Authorized(HttpMethod.Get, $"cache/admin/entries?repository={Uri.EscapeDataString(repo)}", CacheTestApp.AdminToken));
        var entries = (await list.Content.ReadFromJsonAsync<JsonArray>())!;
        var id = entries.Single()!["id"]!.GetValue<long>();
        using var delete = await _cache.Client.SendAsync(Authorized(HttpMethod.Delete, $"cache/admin/entries/{id}", CacheTestApp.AdminToken));
        using var badLimit = await _cache.Client.SendAsync(Authorized(HttpMethod.Get, "cache/admin/entries?limit=0", CacheTestApp.AdminToken));

        await ProblemAssert.IsProblemAsync(noToken, HttpStatusCode.Unauthorized);
        await ProblemAssert.IsProblemAsync(jobToken, HttpStatusCode.Unauthorized);
        var mine = (await usage.Content.ReadFromJsonAsync<JsonArray>())!.Single(u => u!["repository"]!.GetValue<string>() == repo)!;
        Assert.Equal(1234, mine["bytes"]!.GetValue<long>());
        Assert.Equal(1, mine["entries"]!.GetValue<int>());
        // Per scope (the web UI's Cache page in a split deployment), with the quota.
        var byScope = (await scopes.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Equal(mine["quotaBytes"]!.GetValue<long>(), byScope["repositoryQuotaBytes"]!.GetValue<long>());
        var myScope = byScope["scopes"]!.AsArray().Single(u => u!["repository"]!.GetValue<string>() == repo)!;
        Assert.Equal(("refs/heads/main", 1, 1234L), (myScope["scope"]!.GetValue<string>(), myScope["entries"]!.GetValue<int>(), myScope["bytes"]!.GetValue<long>()));
        await ProblemAssert.IsProblemAsync(scopesByJob, HttpStatusCode.Unauthorized);
        Assert.Equal("admin-me", entries.Single()!["key"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        Assert.Null(await job.LookupV2Async("admin-me", Version));
        Assert.Equal(HttpStatusCode.BadRequest, badLimit.StatusCode);
    }

    [Fact]
    public async Task What_each_job_attempt_was_served_is_recorded_by_the_cache_and_read_only_with_the_attestation_token()
    {
        var repo = NewRepository();
        var (saverId, readerId) = (Guid.NewGuid(), Guid.NewGuid());
        var content = RandomNumberGenerator.GetBytes(4321);
        var saver = Job(repo, jobId: saverId);
        Assert.Null(await saver.LookupV2Async("deps-1", Version, "deps-"));
        (await saver.SaveV2Async("deps-1", Version, content)).EnsureSuccessStatusCode();
        // A feature branch's second attempt restores the default branch's entry by restore key; attempt 1 asked for nothing.
        var reader = Job(repo, "refs/heads/feature/x", readerId, attempt: 2);
        Assert.NotNull(await reader.LookupV2Async("deps-2", Version, "deps-"));
        using (var v1 = await reader.V1Async(HttpMethod.Get, $"cache?keys=deps-1&version={Version}")) Assert.Equal(HttpStatusCode.OK, v1.StatusCode);

        async Task<JsonArray> UsesAsync(Guid job, int attempt)
        {
            using var response = await _cache.Client.SendAsync(Authorized(HttpMethod.Get, $"internal/v1/cache-uses?jobId={job}&attempt={attempt}", CacheTestApp.AttestationToken));
            response.EnsureSuccessStatusCode();
            return (await response.Content.ReadFromJsonAsync<JsonArray>())!;
        }
        var saved = await UsesAsync(saverId, 1);
        var read = await UsesAsync(readerId, 2);

        Assert.Equal(["restore", "save"], saved.Select(u => u!["kind"]!.GetValue<string>()));
        Assert.False(saved[0]!["hit"]!.GetValue<bool>());
        Assert.Equal(("deps-1", "refs/heads/main", CacheProtocolClient.Sha256(content), 4321L),
            (saved[1]!["key"]!.GetValue<string>(), saved[1]!["scope"]!.GetValue<string>(), saved[1]!["sha256"]!.GetValue<string>(), saved[1]!["sizeBytes"]!.GetValue<long>()));
        Assert.Equal([("actions-v2", "deps-2", "deps-1"), ("actions-v1", "deps-1", "deps-1")],
            read.Select(u => (u!["protocol"]!.GetValue<string>(), u["key"]!.GetValue<string>(), u["matchedKey"]!.GetValue<string>())));
        Assert.All(read, u => Assert.Equal(("refs/heads/main", CacheProtocolClient.Sha256(content)), (u!["scope"]!.GetValue<string>(), u["sha256"]!.GetValue<string>())));
        Assert.Empty(await UsesAsync(readerId, 1));

        // Only the intake's credential reads it: not a job token, not the admin token; bad queries name the field.
        using var jobToken = await _cache.Client.SendAsync(Authorized(HttpMethod.Get, $"internal/v1/cache-uses?jobId={saverId}&attempt=1", _cache.Mint(repo, jobId: saverId)));
        using var admin = await _cache.Client.SendAsync(Authorized(HttpMethod.Get, $"internal/v1/cache-uses?jobId={saverId}&attempt=1", CacheTestApp.AdminToken));
        using var noAttempt = await _cache.Client.SendAsync(Authorized(HttpMethod.Get, $"internal/v1/cache-uses?jobId={saverId}", CacheTestApp.AttestationToken));
        await ProblemAssert.IsProblemAsync(jobToken, HttpStatusCode.Unauthorized);
        await ProblemAssert.IsProblemAsync(admin, HttpStatusCode.Unauthorized);
        await ProblemAssert.IsProblemAsync(noAttempt, HttpStatusCode.BadRequest, "attempt");
    }

    private static HttpRequestMessage Authorized(HttpMethod method, string path, string token)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return request;
    }
}
