using Xunit;
using EphemeralCI.Cache.BuildCache;

namespace EphemeralCI.UnitTests.Cache;

public class CacheScopeTests
{
    private const string Hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    [Fact]
    public void Object_key_is_the_repository_digest_then_kind_hash_entry_and_a_fresh_nonce()
    {
        var address = new BuildCacheAddress(BuildCacheKind.ContentAddressable, Hash);
        var key = CacheScope.BuildCacheObjectKey("acme/widgets", address, 42);

        // sha256("acme/widgets"), computed independently with `printf %s acme/widgets | sha256sum`.
        Assert.StartsWith($"build-cache/{Sha256Hex("acme/widgets")}/cas-{Hash}-42-", key);
        Assert.NotEqual(key, CacheScope.BuildCacheObjectKey("acme/widgets", address, 42)); // never written twice
        Assert.Contains("/ac-" + Hash, CacheScope.BuildCacheObjectKey("acme/widgets", new BuildCacheAddress(BuildCacheKind.ActionCache, Hash), 1));
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
        Assert.NotEqual(CacheScope.BuildCacheObjectKey(a, address, 1)[..76], CacheScope.BuildCacheObjectKey(b, address, 1)[..76]);
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
