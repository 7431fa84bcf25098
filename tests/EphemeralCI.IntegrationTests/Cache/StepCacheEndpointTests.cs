using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using EphemeralCI.RunnerAgent.Caching;
using EphemeralCI.IntegrationTests.Infrastructure;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// The runner agent's loopback cache endpoint (what steps get as <c>ECI_CACHE_URL</c> and <c>ACTIONS_RESULTS_URL</c>)
/// in front of a real cache on Kestrel, S3 emulator, Postgres and Redis: the real <c>@actions/cache</c> with the
/// placeholder token, Bazel's and Gradle's requests as curl sends them with those tools' headers, and a step playing
/// the attacker — looking for the token, for routes other than the cache's, for another repository's entries.
/// </summary>
public sealed class StepCacheEndpointTests(ToolkitCacheFixture fixture) : IClassFixture<ToolkitCacheFixture>
{
    private const string Main = "refs/heads/main";
    private CacheTestApp Cache => fixture.Cache;

    private static string NewRepository() => $"acme/steps-{Guid.NewGuid():N}";

    private StepCacheEndpoint Endpoint(string token) => StepCacheEndpoint.Start(new HttpClient { BaseAddress = Cache.BaseAddress }, token);

    [Theory]
    [InlineData("v2")]
    [InlineData("v1")]
    public async Task The_real_toolkit_saves_through_one_runners_endpoint_and_restores_through_anothers(string protocol)
    {
        var repo = NewRepository();
        var content = RandomNumberGenerator.GetBytes(200_000);
        using var saver = new ActionsToolkitRunner();
        saver.WriteData("deps.bin", content);
        using var restorer = new ActionsToolkitRunner();

        ToolkitResult saved, restored;
        await using (var first = Endpoint(Cache.Mint(repo)))
        {
            saved = await saver.SaveAsync(new Uri(first.BaseUrl + "/"), StepCacheEndpoint.PlaceholderToken, protocol, "deps-linux-1");
        }
        await using (var second = Endpoint(Cache.Mint(repo)))
        {
            restored = await restorer.RestoreAsync(new Uri(second.BaseUrl + "/"), StepCacheEndpoint.PlaceholderToken, protocol, "deps-linux-1");
        }

        Assert.True(saved.Id > 0, saved.Output);
        Assert.Equal("deps-linux-1", restored.Hit);
        Assert.Equal(content, restorer.ReadData("deps.bin"));
    }

    [Fact]
    public async Task Signed_urls_in_the_answers_point_back_at_the_endpoint_and_presigned_store_urls_are_dropped()
    {
        await using var endpoint = Endpoint(Cache.Mint(NewRepository()));
        var json = endpoint.RewriteSignedUrls("""{"ok":true,"signed_upload_url":"http://10.1.2.3:5000/cache/blobs/7?job=a&exp=1&sig=x","direct_download_url":"http://s3/x?X-Amz-Signature=y"}""");

        Assert.Contains($"\"signed_upload_url\":\"{endpoint.BaseUrl}/cache/blobs/7?job=a\\u0026exp=1\\u0026sig=x\"", json);
        Assert.DoesNotContain("direct_download_url", json);
    }

    [Fact]
    public async Task Bazel_requests_as_bazel_sends_them_round_trip_and_a_miss_is_404()
    {
        var repo = NewRepository();
        await using var endpoint = Endpoint(Cache.Mint(repo));
        var blob = RandomNumberGenerator.GetBytes(50_000);
        var cas = Convert.ToHexStringLower(SHA256.HashData(blob));
        var action = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var actionResult = RandomNumberGenerator.GetBytes(300);
        using var files = new TempFiles();

        // Bazel's HTTP cache client: PUT with Accept */* and keep-alive, no Content-Type; GET with Accept */*.
        string[] bazel = ["-H", "Accept: */*", "-H", "Connection: keep-alive", "-H", "User-Agent: bazel/7.4.1"];
        var putCas = await CurlAsync([.. bazel, "-T", files.Write(blob), $"{endpoint.BuildCacheUrl}/cas/{cas}"]);
        var putAc = await CurlAsync([.. bazel, "-T", files.Write(actionResult), $"{endpoint.BuildCacheUrl}/ac/{action}"]);
        var getCas = await CurlAsync([.. bazel, "-o", files.Path("cas.out"), $"{endpoint.BuildCacheUrl}/cas/{cas}"]);
        var getAc = await CurlAsync([.. bazel, "-o", files.Path("ac.out"), $"{endpoint.BuildCacheUrl}/ac/{action}"]);
        var head = await CurlAsync([.. bazel, "-I", $"{endpoint.BuildCacheUrl}/cas/{cas}"]);
        var miss = await CurlAsync([.. bazel, $"{endpoint.BuildCacheUrl}/ac/{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32))}"]);

        Assert.Equal((204, 204, 200, 200, 200, 404), (putCas.Status, putAc.Status, getCas.Status, getAc.Status, head.Status, miss.Status));
        Assert.Equal(blob, File.ReadAllBytes(files.Path("cas.out")));
        Assert.Equal(actionResult, File.ReadAllBytes(files.Path("ac.out")));
        Assert.Contains($"Content-Length: {blob.Length}", head.Output, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("application/vnd.gradle.build-cache-artifact.v1")]
    [InlineData("text/plain")]
    [InlineData(null)]
    public async Task Gradle_requests_with_the_headers_gradle_documents_store_and_load(string? contentType)
    {
        await using var endpoint = Endpoint(Cache.Mint(NewRepository()));
        // Gradle's build-cache keys are 32 hex digits; HttpBuildCache's url is "$ECI_CACHE_URL/ac/".
        var key = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var entry = RandomNumberGenerator.GetBytes(20_000);
        using var files = new TempFiles();
        string[] gradle = ["-u", "gradle:credentials-the-endpoint-drops", "-H", "User-Agent: Gradle/8.14 (Linux;6.1;amd64) (Eclipse Adoptium;21.0.5;21.0.5+11-LTS)"];

        var put = await CurlAsync([.. gradle, "-X", "PUT", "--data-binary", "@" + files.Write(entry),
            "-H", contentType is null ? "Content-Type:" : $"Content-Type: {contentType}", $"{endpoint.BuildCacheUrl}/ac/{key}"]);
        var get = await CurlAsync([.. gradle, "-H", "Accept: application/vnd.gradle.build-cache-artifact.v1, */*", "-o", files.Path("out"), $"{endpoint.BuildCacheUrl}/ac/{key}"]);
        var miss = await CurlAsync([.. gradle, "-H", "Accept: application/vnd.gradle.build-cache-artifact.v1, */*", $"{endpoint.BuildCacheUrl}/ac/{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16))}"]);

        Assert.True(put.Status == 204, put.Output);
        Assert.Equal((200, 404), (get.Status, miss.Status));
        Assert.Equal(entry, File.ReadAllBytes(files.Path("out")));
    }

    [Theory]
    [InlineData("GET", "/cache/admin/usage")]
    [InlineData("GET", "/cache/admin/entries?repository=acme/widgets")]
    [InlineData("DELETE", "/cache/admin/entries/1")]
    [InlineData("GET", "/cache/ac/../admin/usage")]
    [InlineData("GET", "/cache/ac/%2e%2e/admin/usage")]
    [InlineData("GET", "/cache//admin/usage")]
    [InlineData("POST", "/twirp/github.actions.results.api.v1.CacheService/DeleteCacheEntry")]
    [InlineData("GET", "/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL")]
    [InlineData("GET", "/api/v1/runner/job")]
    [InlineData("POST", "/api/v1/runner/secrets")]
    [InlineData("GET", "/health")]
    [InlineData("GET", "/")]
    [InlineData("DELETE", "/cache/cas/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")]
    public async Task Routes_other_than_the_caches_are_refused_with_404_before_anything_is_forwarded(string method, string path)
    {
        await using var endpoint = Endpoint(Cache.Mint(NewRepository()));
        string[] body = method == "POST" ? ["-H", "Content-Type: application/json", "--data-binary", "{}"] : [];
        var admin = await CurlAsync(["-X", method, "--path-as-is", "-H", $"Authorization: Bearer {CacheTestApp.AdminToken}", .. body, endpoint.BaseUrl + path]);

        Assert.True(admin.Status == 404, admin.Output);
        Assert.Contains("forwards only the cache routes", admin.Output);
    }

    [Fact]
    public async Task No_answer_of_the_endpoint_carries_the_job_token()
    {
        var token = Cache.Mint(NewRepository());
        await using var endpoint = Endpoint(token);
        var cas = Convert.ToHexStringLower(SHA256.HashData("x"u8));
        using var files = new TempFiles();
        var body = files.Write("""{"key":"k","version":"v"}"""u8.ToArray());
        List<string[]> probes =
        [
            ["-X", "PUT", "--data-binary", "@" + body, $"{endpoint.BuildCacheUrl}/cas/{cas}"], // wrong hash: a problem answer
            [$"{endpoint.BuildCacheUrl}/ac/{cas}"],
            [$"{endpoint.BuildCacheUrl}/ac/abc"], // a validation problem from the cache
            ["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@" + body, endpoint.BaseUrl + StepCacheRoutes.TwirpService + "CreateCacheEntry"],
            ["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@" + body, endpoint.BaseUrl + StepCacheRoutes.TwirpService + "GetCacheEntryDownloadURL"],
            [endpoint.BaseUrl + "/_apis/artifactcache/cache?keys=k&version=v"],
            [endpoint.BaseUrl + "/cache/blobs/1?job=x&exp=1&sig=y"],
            ["-X", "TRACE", endpoint.BaseUrl + "/cache/ac/" + cas],
            [endpoint.BaseUrl + "/echo"],
        ];

        foreach (var probe in probes)
        {
            var answer = await CurlAsync(["-H", "Authorization: Bearer " + StepCacheEndpoint.PlaceholderToken, .. probe]);
            Assert.True(answer.Status is > 0 and < 500, answer.Output);
            Assert.DoesNotContain(token, answer.Output, StringComparison.Ordinal);
            Assert.DoesNotContain(token.Split('.')[1], answer.Output, StringComparison.Ordinal); // not even the claims
        }
    }

    [Fact]
    public async Task A_step_cannot_reach_another_repositorys_entries_even_with_that_repositorys_token()
    {
        var victim = NewRepository();
        var victimToken = Cache.Mint(victim);
        var blob = RandomNumberGenerator.GetBytes(1000);
        var cas = Convert.ToHexStringLower(SHA256.HashData(blob));
        await using (var victimEndpoint = Endpoint(victimToken))
        {
            using var files = new TempFiles();
            Assert.Equal(204, (await CurlAsync(["-T", files.Write(blob), $"{victimEndpoint.BuildCacheUrl}/cas/{cas}"])).Status);
        }

        await using var attacker = Endpoint(Cache.Mint(NewRepository()));
        var plain = await CurlAsync([$"{attacker.BuildCacheUrl}/cas/{cas}"]);
        // A stolen token in the step's own request changes nothing: the endpoint sends its job's token, whatever comes in.
        var withStolen = await CurlAsync(["-H", "Authorization: Bearer " + victimToken, $"{attacker.BuildCacheUrl}/cas/{cas}"]);

        Assert.Equal((404, 404), (plain.Status, withStolen.Status));
        // And the cache itself does serve it to the victim's token (so the 404s above are the scope, not a broken entry).
        using var direct = new HttpRequestMessage(HttpMethod.Get, $"/cache/cas/{cas}");
        direct.Headers.Authorization = new AuthenticationHeaderValue("Bearer", victimToken);
        using var served = await Cache.Client.SendAsync(direct);
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
    }

    [Fact]
    public async Task After_the_steps_the_endpoint_is_gone()
    {
        var endpoint = Endpoint(Cache.Mint(NewRepository()));
        var url = $"{endpoint.BuildCacheUrl}/ac/{new string('a', 64)}";
        Assert.Equal(404, (await CurlAsync([url])).Status);

        await endpoint.DisposeAsync();

        Assert.Equal(0, (await CurlAsync([url])).Status); // curl: connection refused
    }

    private sealed record CurlResult(int Status, string Output);

    /// <summary>Real curl, as a build script in a step would run it: prints the body, then the status.</summary>
    private static async Task<CurlResult> CurlAsync(string[] args)
    {
        var start = new ProcessStartInfo("curl") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in (string[])["-sS", "--max-time", "60", "-D", "-", "-w", "\n%{http_code}", .. args]) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var output = await stdout;
        var last = output.TrimEnd().Split('\n')[^1];
        return new CurlResult(int.TryParse(last, out var status) ? status : -1, output + await stderr);
    }

    private sealed class TempFiles : IDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("eci-step-cache-").FullName;

        public string Path(string name) => System.IO.Path.Combine(_dir, name);

        public string Write(byte[] content)
        {
            var path = Path(Guid.NewGuid().ToString("N"));
            File.WriteAllBytes(path, content);
            return path;
        }

        public void Dispose() => Directory.Delete(_dir, recursive: true);
    }
}
