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
