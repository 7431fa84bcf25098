using EphemeralCI.Intake.Auth;
using Xunit;

namespace EphemeralCI.UnitTests.Intake;

public sealed class ApiKeySecretTests
{
    [Fact]
    public void Generated_keys_are_well_formed_distinct_and_carry_32_bytes()
    {
        var a = ApiKeySecret.Generate();
        var b = ApiKeySecret.Generate();
        Assert.NotEqual(a, b);
        Assert.StartsWith("eci_", a);
        Assert.True(ApiKeySecret.IsWellFormed(a));
        Assert.Equal(32, Convert.FromBase64String(ToBase64(a["eci_".Length..])).Length);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("eci_short")]
    [InlineData("xyz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("eci_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+A")] // '+' is not base64url
    [InlineData("eci_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA A")]
    public void Malformed_keys_are_rejected(string? key) => Assert.False(ApiKeySecret.IsWellFormed(key));

    [Fact]
    public void Overlong_keys_are_rejected_before_hashing() =>
        Assert.False(ApiKeySecret.IsWellFormed("eci_" + new string('A', ApiKeySecret.MaxLength)));

    [Fact]
    public void Hash_is_sha256_and_matches_only_the_same_key()
    {
        var key = ApiKeySecret.Generate();
        var hash = ApiKeySecret.Hash(key);
        Assert.Equal(32, hash.Length);
        Assert.True(ApiKeySecret.Matches(key, hash));
        Assert.False(ApiKeySecret.Matches(key[..^1] + (key[^1] == 'A' ? 'B' : 'A'), hash));
    }

    [Fact]
    public void Prefix_is_the_marker_and_a_few_characters_not_the_secret()
    {
        var key = ApiKeySecret.Generate();
        var prefix = ApiKeySecret.PrefixOf(key);
        Assert.Equal(ApiKeySecret.PrefixLength, prefix.Length);
        Assert.StartsWith(prefix, key);
        Assert.True(key.Length - prefix.Length >= 35, "most of the key must stay secret");
    }

    [Theory]
    [InlineData(new[] { "submit" }, "submit", true)]
    [InlineData(new[] { "read" }, "submit", false)]
    [InlineData(new[] { "admin" }, "submit", true)]
    [InlineData(new[] { "admin" }, "read", true)]
    [InlineData(new[] { "submit", "read" }, "admin", false)]
    [InlineData(new string[0], "read", false)]
    public void Admin_implies_every_scope(string[] granted, string required, bool allowed) =>
        Assert.Equal(allowed, ApiKeyScopes.Allows(granted, required));

    private static string ToBase64(string base64Url)
    {
        var s = base64Url.Replace('-', '+').Replace('_', '/');
        return s.PadRight(s.Length + (4 - s.Length % 4) % 4, '=');
    }
}
