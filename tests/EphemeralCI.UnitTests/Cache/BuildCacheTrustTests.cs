using EphemeralCI.Cache;
using EphemeralCI.Cache.BuildCache;
using EphemeralCI.Cache.Entries;
using Xunit;

namespace EphemeralCI.UnitTests.Cache;

/// <summary>Who may write action results (<c>Cache:BuildCache:TrustedRefs</c>), and each ref's budget.</summary>
public sealed class BuildCacheTrustTests
{
    [Theory]
    [InlineData("refs/heads/main", true)]
    [InlineData("refs/heads/feature", false)]
    [InlineData("refs/pull/7/merge", false)]
    [InlineData("refs/heads/main-evil", false)]
    public void By_default_only_the_default_branch_writes_action_results(string gitRef, bool trusted) =>
        Assert.Equal(trusted, new BuildCacheOptions().MayWriteActionResults(gitRef, "refs/heads/main"));

    [Theory]
    [InlineData("refs/heads/trunk", true)]
    [InlineData("refs/heads/release/1.2", true)]
    [InlineData("refs/heads/main", false)] // the list replaces the default
    [InlineData("refs/heads/releases", false)]
    [InlineData("refs/pull/1/merge", false)]
    public void Configured_refs_and_wildcards_and_the_default_token(string gitRef, bool trusted)
    {
        var options = new BuildCacheOptions { TrustedRefs = ["@default", "refs/heads/release/*"] };

        Assert.Equal(trusted, options.MayWriteActionResults(gitRef, "refs/heads/trunk"));
    }

    [Fact]
    public void The_build_cache_version_cannot_be_named_through_the_actions_protocols() =>
        Assert.NotNull(CacheKeyRules.CheckVersion(BuildCacheStore.Version));

    [Fact]
    public void The_default_branch_budgets_the_whole_repository_and_other_refs_their_own_share()
    {
        var options = new CacheOptions { RepositoryQuotaBytes = 1000, ScopeQuotaBytes = 600, DefaultBranch = "refs/heads/main" };

        Assert.Equal(1000, options.ScopeQuotaOf("acme/widgets", "refs/heads/main"));
        Assert.Equal(600, options.ScopeQuotaOf("acme/widgets", "refs/heads/feature"));
        Assert.Equal(400, new CacheOptions { RepositoryQuotaBytes = 400, ScopeQuotaBytes = 600 }.ScopeQuotaOf("acme/widgets", "refs/heads/x"));
    }
}
