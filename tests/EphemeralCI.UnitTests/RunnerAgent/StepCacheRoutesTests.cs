using EphemeralCI.RunnerAgent.Caching;
using Xunit;

namespace EphemeralCI.UnitTests.RunnerAgent;

/// <summary>What the agent's loopback endpoint forwards to the cache with the job's token, and what it refuses.</summary>
public class StepCacheRoutesTests
{
    private const string Sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    [Theory]
    [InlineData("POST", "/twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry", StepCacheRouteKind.ActionsApi)]
    [InlineData("POST", "/twirp/github.actions.results.api.v1.CacheService/FinalizeCacheEntryUpload", StepCacheRouteKind.ActionsApi)]
    [InlineData("POST", "/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL", StepCacheRouteKind.ActionsApi)]
    [InlineData("GET", "/_apis/artifactcache/cache", StepCacheRouteKind.ActionsApi)]
    [InlineData("POST", "/_apis/artifactcache/caches", StepCacheRouteKind.ActionsApi)]
    [InlineData("PATCH", "/_apis/artifactcache/caches/42", StepCacheRouteKind.ActionsApi)]
    [InlineData("POST", "/_apis/artifactcache/caches/42", StepCacheRouteKind.ActionsApi)]
    [InlineData("PUT", "/cache/blobs/42", StepCacheRouteKind.SignedBlob)]
    [InlineData("GET", "/cache/blobs/42", StepCacheRouteKind.SignedBlob)]
    [InlineData("GET", "/cache/ac/" + Sha, StepCacheRouteKind.BuildCache)]
    [InlineData("HEAD", "/cache/cas/" + Sha, StepCacheRouteKind.BuildCache)]
    [InlineData("PUT", "/cache/ac/0123456789abcdef0123456789abcdef", StepCacheRouteKind.BuildCache)]
    public void Forwards_the_cache_protocols(string method, string path, StepCacheRouteKind expected) =>
        Assert.Equal(expected, StepCacheRoutes.Match(method, path));

    [Theory]
    [InlineData("GET", "/cache/admin/usage")]
    [InlineData("DELETE", "/cache/admin/entries/1")]
    [InlineData("DELETE", "/cache/ac/" + Sha)]
    [InlineData("GET", "/cache/ac/../admin/usage")]
    [InlineData("GET", "/cache/ac/%2e%2e/admin")]
    [InlineData("GET", "/cache//ac/" + Sha)]
    [InlineData("GET", "/cache/ac/" + Sha + "/x")]
    [InlineData("GET", "/cache/blobs/42/../../admin")]
    [InlineData("POST", "/twirp/github.actions.results.api.v1.CacheService/DeleteCacheEntry")]
    [InlineData("POST", "/twirp/github.actions.results.api.v1.ArtifactService/CreateArtifact")]
    [InlineData("DELETE", "/_apis/artifactcache/caches/42")]
    [InlineData("GET", "/api/v1/runner/job")]
    [InlineData("POST", "/api/v1/runner/secrets")]
    [InlineData("GET", "/")]
    public void Refuses_everything_else(string method, string path) => Assert.Null(StepCacheRoutes.Match(method, path));
}
