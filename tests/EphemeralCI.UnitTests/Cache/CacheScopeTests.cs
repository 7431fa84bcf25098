using Xunit;
using EphemeralCI.Cache.BuildCache;

namespace EphemeralCI.UnitTests.Cache;

public class CacheScopeTests
{
    private const string Hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    [Fact]
    public void Key_is_the_repository_digest_then_kind_then_hash()
    {
        var key = CacheScope.BuildCacheKey("acme/widgets", new BuildCacheAddress(BuildCacheKind.ContentAddressable, Hash));

        // sha256("acme/widgets"), computed independently with `printf %s acme/widgets | sha256sum`.
        Assert.Equal($"build-cache/{Sha256Hex("acme/widgets")}/cas/{Hash}", key);
        Assert.EndsWith("/ac/" + Hash, CacheScope.BuildCacheKey("acme/widgets", new BuildCacheAddress(BuildCacheKind.ActionCache, Hash)));
    }

    [Fact]
    public void Known_digest_of_a_repository_name() =>
        Assert.Equal("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", CacheScope.RepositoryId("hello"));

    [Theory]
    [InlineData("acme/widgets", "acme/gadgets")]
    [InlineData("acme/widgets", "Acme/Widgets")]
    [InlineData("acme/widgets", "acme/widgets/../gadgets")]
    public void Different_repositories_never_share_a_prefix(string a, string b)
    {
        var address = new BuildCacheAddress(BuildCacheKind.ActionCache, Hash);
        Assert.NotEqual(CacheScope.BuildCacheKey(a, address), CacheScope.BuildCacheKey(b, address));
    }

    [Theory]
    [InlineData("../../etc")]
    [InlineData("a/b/../../c")]
    [InlineData("ünïcode/repo")]
    public void Odd_repository_names_stay_one_hex_segment(string repository)
    {
        var id = CacheScope.RepositoryId(repository);

        Assert.Equal(64, id.Length);
        Assert.True(BuildCacheAddress.IsSha256Hex(id));
    }

    [Fact]
    public void Empty_repository_is_refused() =>
        Assert.Throws<ArgumentException>(() => CacheScope.RepositoryId(""));

    private static string Sha256Hex(string s) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(s)));
}
