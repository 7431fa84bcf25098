using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using EphemeralCI.Cache.BuildCache;
using EphemeralCI.Cache.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

public sealed class BuildCacheApiTests : IAsyncLifetime
{
    private const long Limit = 8 * 1024 * 1024;
    private const string Repository = "acme/widgets";

    private CacheTestApp _cache = null!;
    private string _token = "";

    public async Task InitializeAsync()
    {
        _cache = await CacheTestApp.StartAsync(Limit);
        _token = _cache.Mint(Repository);
    }

    public async Task DisposeAsync() => await _cache.DisposeAsync();

    [Fact]
    public async Task Cas_entry_of_several_MiB_round_trips_through_put_head_and_get()
    {
        var content = RandomNumberGenerator.GetBytes(6 * 1024 * 1024 + 321);
        var hash = Sha256(content);

        using var put = await SendAsync(HttpMethod.Put, $"/cache/cas/{hash}", _token, new ByteArrayContent(content));
        Assert.Equal(HttpStatusCode.NoContent, put.StatusCode);

        using var head = await SendAsync(HttpMethod.Head, $"/cache/cas/{hash}", _token);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(content.Length, head.Content.Headers.ContentLength);

        using var get = await SendAsync(HttpMethod.Get, $"/cache/cas/{hash}", _token);
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(content.Length, get.Content.Headers.ContentLength);
        Assert.Equal("application/octet-stream", get.Content.Headers.ContentType?.MediaType);
        Assert.Equal(hash, Sha256(await get.Content.ReadAsByteArrayAsync()));

        // Stored as an entry of the job's ref, under the repository's prefix, and the spool file is gone.
        var entry = await StoredAsync("cas", hash);
        Assert.Equal(("refs/heads/main", hash, (long)content.Length), (entry!.Scope, entry.Sha256, entry.SizeBytes));
        Assert.StartsWith($"build-cache/{CacheScope.RepositoryId(Repository)}/cas-{hash}-", entry.ObjectKey);
        Assert.NotNull(await _cache.Store.StatAsync(entry.ObjectKey!));
        Assert.Empty(SpoolFiles());
    }

    [Fact]
    public async Task Action_cache_entry_holds_any_content_and_is_immutable_once_written()
    {
        var actionKey = Sha256(RandomNumberGenerator.GetBytes(16));

        using var first = await SendAsync(HttpMethod.Put, $"/cache/ac/{actionKey}", _token, new ByteArrayContent("result one"u8.ToArray()));
        using var same = await SendAsync(HttpMethod.Put, $"/cache/ac/{actionKey}", _cache.Mint(Repository), new ByteArrayContent("result one"u8.ToArray()));
        using var other = await SendAsync(HttpMethod.Put, $"/cache/ac/{actionKey}", _token, new ByteArrayContent("result two"u8.ToArray()));
        using var get = await SendAsync(HttpMethod.Get, $"/cache/ac/{actionKey}", _token);

        Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, same.StatusCode); // the same bytes again: a no-op
        var problem = await ProblemAssert.IsProblemAsync(other, HttpStatusCode.Conflict, "body");
        Assert.Contains("immutable", problem["detail"]!.GetValue<string>());
        Assert.Equal("result one", await get.Content.ReadAsStringAsync());
        Assert.Empty(SpoolFiles());
    }

    [Fact]
    public async Task A_feature_branch_reads_the_default_branchs_entries_and_writes_only_its_own()
    {
        var cas = RandomNumberGenerator.GetBytes(2048);
        var casHash = Sha256(cas);
        var actionKey = Sha256(RandomNumberGenerator.GetBytes(16));
        using (var put = await SendAsync(HttpMethod.Put, $"/cache/ac/{actionKey}", _token, new ByteArrayContent("trusted result"u8.ToArray())))
        {
            Assert.Equal(HttpStatusCode.NoContent, put.StatusCode);
        }
        var feature = _cache.Mint(Repository, gitRef: "refs/heads/feature");
        var otherFeature = _cache.Mint(Repository, gitRef: "refs/pull/7/merge");

        using var readsDefault = await SendAsync(HttpMethod.Get, $"/cache/ac/{actionKey}", feature);
        using var ownCas = await SendAsync(HttpMethod.Put, $"/cache/cas/{casHash}", feature, new ByteArrayContent(cas));
        using var featureSeesIt = await SendAsync(HttpMethod.Head, $"/cache/cas/{casHash}", feature);
        using var defaultDoesNot = await SendAsync(HttpMethod.Head, $"/cache/cas/{casHash}", _token);
        using var neighbourDoesNot = await SendAsync(HttpMethod.Get, $"/cache/cas/{casHash}", otherFeature);

        Assert.Equal("trusted result", await readsDefault.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NoContent, ownCas.StatusCode);
        Assert.Equal(HttpStatusCode.OK, featureSeesIt.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, defaultDoesNot.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, neighbourDoesNot.StatusCode);
        Assert.Equal("refs/heads/feature", (await StoredAsync("cas", casHash, "refs/heads/feature"))!.Scope);
        Assert.Null(await StoredAsync("cas", casHash));
    }

    /// <summary>
    /// Cache poisoning from a pull request (the 2024 Actions cache attack, on the build cache): a job of an untrusted ref
    /// tries to plant an action result the default branch's build would then link. It may read, never write, action results.
    /// </summary>
    [Fact]
    public async Task A_pull_request_cannot_plant_an_action_result_for_the_default_branch()
    {
        var actionKey = Sha256(RandomNumberGenerator.GetBytes(16));
        var pullRequest = _cache.Mint(Repository, gitRef: "refs/pull/13/merge");

        using var plant = await SendAsync(HttpMethod.Put, $"/cache/ac/{actionKey}", pullRequest, new ByteArrayContent("evil result"u8.ToArray()));
        using var defaultLooks = await SendAsync(HttpMethod.Get, $"/cache/ac/{actionKey}", _token);
        using var ownLooks = await SendAsync(HttpMethod.Head, $"/cache/ac/{actionKey}", pullRequest);
        using var trusted = await SendAsync(HttpMethod.Put, $"/cache/ac/{actionKey}", _token, new ByteArrayContent("real result"u8.ToArray()));
        using var replace = await SendAsync(HttpMethod.Put, $"/cache/ac/{actionKey}", pullRequest, new ByteArrayContent("evil result"u8.ToArray()));
        using var afterwards = await SendAsync(HttpMethod.Get, $"/cache/ac/{actionKey}", _token);

        var problem = await ProblemAssert.IsProblemAsync(plant, HttpStatusCode.Forbidden, "kind");
        Assert.Contains("Cache:BuildCache:TrustedRefs", problem["detail"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.NotFound, defaultLooks.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, ownLooks.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, trusted.StatusCode);
        await ProblemAssert.IsProblemAsync(replace, HttpStatusCode.Forbidden, "kind");
        Assert.Equal("real result", await afterwards.Content.ReadAsStringAsync());
        Assert.Null(await StoredAsync("ac", actionKey, "refs/pull/13/merge"));
    }

    [Fact]
    public async Task Empty_cas_entry_is_stored()
    {
        var hash = Sha256([]);

        using var put = await SendAsync(HttpMethod.Put, $"/cache/cas/{hash}", _token, new ByteArrayContent([]));
        using var head = await SendAsync(HttpMethod.Head, $"/cache/cas/{hash}", _token);

        Assert.Equal(HttpStatusCode.NoContent, put.StatusCode);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(0, head.Content.Headers.ContentLength);
    }

    [Fact]
    public async Task Cas_body_that_does_not_hash_to_its_key_is_400_and_not_stored()
    {
        var content = RandomNumberGenerator.GetBytes(1024 * 1024);
        var wrongHash = Sha256(RandomNumberGenerator.GetBytes(16));

        using var put = await SendAsync(HttpMethod.Put, $"/cache/cas/{wrongHash}", _token, new ByteArrayContent(content));

        Assert.Equal(HttpStatusCode.BadRequest, put.StatusCode);
        var problem = await put.Content.ReadFromJsonAsync<HttpValidationProblemDetails>();
        Assert.Contains(Sha256(content), Assert.Single(problem!.Errors["body"]));
        using var head = await SendAsync(HttpMethod.Head, $"/cache/cas/{wrongHash}", _token);
        Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        Assert.Null(await StoredAsync("cas", wrongHash));
        Assert.Empty(SpoolFiles());
    }

    [Fact]
    public async Task Another_repositorys_token_never_sees_the_entry()
    {
        var content = RandomNumberGenerator.GetBytes(4096);
        var hash = Sha256(content);
        using var put = await SendAsync(HttpMethod.Put, $"/cache/cas/{hash}", _token, new ByteArrayContent(content));
        Assert.Equal(HttpStatusCode.NoContent, put.StatusCode);
        var other = _cache.Mint("acme/gadgets");

        using var get = await SendAsync(HttpMethod.Get, $"/cache/cas/{hash}", other);
        using var head = await SendAsync(HttpMethod.Head, $"/cache/cas/{hash}", other);
        using var own = await SendAsync(HttpMethod.Head, $"/cache/cas/{hash}", _cache.Mint(Repository));

        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
        Assert.Equal("application/problem+json", get.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        Assert.Equal(HttpStatusCode.OK, own.StatusCode); // another job of the same repository does
    }

    [Fact]
    public async Task Missing_entry_is_404()
    {
        using var get = await SendAsync(HttpMethod.Get, $"/cache/ac/{Sha256(RandomNumberGenerator.GetBytes(8))}", _token);

        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
    }

    [Fact]
    public async Task Body_over_the_limit_with_a_content_length_is_413_before_anything_is_stored()
    {
        var content = new byte[Limit + 1];
        var hash = Sha256(content);

        using var put = await SendAsync(HttpMethod.Put, $"/cache/cas/{hash}", _token, new ByteArrayContent(content));

        await AssertTooLarge(put);
        Assert.Null(await StoredAsync("cas", hash));
    }

    [Fact]
    public async Task Chunked_body_over_the_limit_is_413_and_leaves_no_spool_file()
    {
        var content = new byte[Limit + 4096];
        var hash = Sha256(content);
        // A stream of unknown length goes out chunked, so only counting while reading can catch it.
        var body = new StreamContent(new UnknownLengthStream(content));

        using var put = await SendAsync(HttpMethod.Put, $"/cache/cas/{hash}", _token, body);

        await AssertTooLarge(put);
        Assert.Null(await StoredAsync("cas", hash));
        Assert.Empty(SpoolFiles());
    }

    [Fact]
    public async Task Body_of_exactly_the_limit_is_stored()
    {
        var content = RandomNumberGenerator.GetBytes((int)Limit);

        using var put = await SendAsync(HttpMethod.Put, $"/cache/cas/{Sha256(content)}", _token, new ByteArrayContent(content));

        Assert.Equal(HttpStatusCode.NoContent, put.StatusCode);
    }

    [Theory]
    [InlineData("/cache/xyz/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "kind")]
    [InlineData("/cache/cas/E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "hash")]
    [InlineData("/cache/ac/abc", "hash")]
    public async Task Bad_kind_or_hash_is_400_naming_the_field(string path, string field)
    {
        foreach (var method in new[] { HttpMethod.Get, HttpMethod.Put })
        {
            using var response = await SendAsync(method, path, _token, method == HttpMethod.Put ? new ByteArrayContent([1]) : null);

            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var problem = await response.Content.ReadFromJsonAsync<HttpValidationProblemDetails>();
            Assert.Equal([field], problem!.Errors.Keys);
        }
    }

    [Fact]
    public async Task Missing_tampered_or_expired_token_is_401_problem()
    {
        var path = $"/cache/cas/{Sha256([])}";
        var tampered = _token[..^2] + (_token[^2] == 'A' ? "B" : "A") + _token[^1];
        var expired = _cache.Mint(Repository, deadline: DateTimeOffset.UtcNow.AddHours(-1));

        foreach (var token in new string?[] { null, tampered, expired })
        {
            using var get = await SendAsync(HttpMethod.Get, path, token);
            using var put = await SendAsync(HttpMethod.Put, path, token, new ByteArrayContent([]));

            Assert.Equal(HttpStatusCode.Unauthorized, get.StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, put.StatusCode);
            Assert.Equal("application/problem+json", get.Content.Headers.ContentType?.MediaType);
        }
        using var head = await SendAsync(HttpMethod.Head, path, _token);
        Assert.Equal(HttpStatusCode.NotFound, head.StatusCode); // nothing was stored by the refused PUTs
    }

    [Fact]
    public async Task Start_up_created_the_bucket_and_health_says_so()
    {
        Assert.True(await _cache.Store.BucketExistsAsync());

        using var health = await _cache.Client.GetAsync("/health");

        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("Healthy", await health.Content.ReadAsStringAsync());
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string? token, HttpContent? content = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await _cache.Client.SendAsync(request);
    }

    private static async Task AssertTooLarge(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<ProblemDetails>();
        Assert.Contains("Cache:MaxObjectBytes", problem!.Detail);
    }

    /// <summary>The build-cache entry of <paramref name="scope"/> at this address, as the database holds it.</summary>
    private async Task<CacheEntry?> StoredAsync(string kind, string hash, string scope = "refs/heads/main")
    {
        await using var services = _cache.App.Services.CreateAsyncScope();
        var db = services.ServiceProvider.GetRequiredService<CacheDbContext>();
        return await db.Entries.AsNoTracking().SingleOrDefaultAsync(e =>
            e.Repository == Repository && e.Scope == scope && e.Key == $"{kind}/{hash}" && e.Version == BuildCacheStore.Version);
    }

    private string[] SpoolFiles() =>
        Directory.Exists(_cache.SpoolDirectory) ? Directory.GetFiles(_cache.SpoolDirectory) : [];

    private static string Sha256(byte[] content) => Convert.ToHexStringLower(SHA256.HashData(content));

    /// <summary>A readable stream that will not tell its length.</summary>
    private sealed class UnknownLengthStream(byte[] content) : MemoryStream(content)
    {
        public override bool CanSeek => false;
    }
}
