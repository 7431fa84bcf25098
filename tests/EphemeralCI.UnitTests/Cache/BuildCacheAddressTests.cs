using Xunit;
using EphemeralCI.Cache.BuildCache;

namespace EphemeralCI.UnitTests.Cache;

public class BuildCacheAddressTests
{
    private const string Hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    [Theory]
    [InlineData("ac", BuildCacheKind.ActionCache)]
    [InlineData("cas", BuildCacheKind.ContentAddressable)]
    public void Accepts_both_kinds_and_a_lowercase_sha256(string kind, BuildCacheKind expected)
    {
        Assert.True(BuildCacheAddress.TryParse(kind, Hash, out var address, out var errors));
        Assert.Null(errors);
        Assert.Equal(new BuildCacheAddress(expected, Hash), address);
    }

    [Theory]
    [InlineData("AC")]
    [InlineData("cache")]
    [InlineData("")]
    [InlineData(null)]
    public void Names_a_bad_kind(string? kind)
    {
        Assert.False(BuildCacheAddress.TryParse(kind, Hash, out _, out var errors));
        Assert.Equal(["kind"], errors.Keys);
    }

    [Theory]
    [InlineData("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")] // uppercase
    [InlineData("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85")] // 63
    [InlineData("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555")] // 65
    [InlineData("g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")] // not hex
    [InlineData("../../../../../../../../../../../../../../../../../../../etc/pass")]
    [InlineData("")]
    [InlineData(null)]
    public void Names_a_bad_hash(string? hash)
    {
        Assert.False(BuildCacheAddress.TryParse("cas", hash, out _, out var errors));
        Assert.Equal(["hash"], errors.Keys);
    }

    [Fact]
    public void Names_both_fields_when_both_are_bad()
    {
        Assert.False(BuildCacheAddress.TryParse("x", "y", out _, out var errors));
        Assert.Equal(["hash", "kind"], errors.Keys.Order());
    }
}

public class BuildCacheActionKeyTests
{
    [Theory]
    [InlineData("0123456789abcdef0123456789abcdef")] // Gradle (MD5, 32 digits)
    [InlineData("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")] // Bazel, ccache layout=bazel
    [InlineData("cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")] // SHA-512
    public void Action_keys_may_be_other_digests_than_sha256(string key)
    {
        Assert.True(BuildCacheAddress.TryParse("ac", key, out var address, out _));
        Assert.Equal(key, address.Hash);
    }

    [Theory]
    [InlineData("ac", "0123456789abcdef0123456789abcde")] // 31
    [InlineData("ac", "0123456789ABCDEF0123456789ABCDEF")] // uppercase
    [InlineData("cas", "0123456789abcdef0123456789abcdef")] // a CAS key is the body's SHA-256, nothing shorter
    public void Names_a_key_that_is_too_short_uppercase_or_not_sha256_for_cas(string kind, string key)
    {
        Assert.False(BuildCacheAddress.TryParse(kind, key, out _, out var errors));
        Assert.Equal(["hash"], errors.Keys);
    }
}
