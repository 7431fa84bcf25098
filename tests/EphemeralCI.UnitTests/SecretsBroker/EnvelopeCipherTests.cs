using System.Security.Cryptography;
using System.Text;
using EphemeralCI.SecretsBroker;
using EphemeralCI.SecretsBroker.Crypto;
using Microsoft.Extensions.Options;
using Xunit;

namespace EphemeralCI.UnitTests.SecretsBroker;

public sealed class EnvelopeCipherTests
{
    private static readonly string K1 = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
    private static readonly string K2 = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    private static EnvelopeCipher Cipher(string active, params (string Id, string Key)[] keys) =>
        new(Ring(active, keys));

    private static KeyRing Ring(string active, params (string Id, string Key)[] keys) =>
        new(Options.Create(new SecretsBrokerOptions { ActiveKeyId = active, KeyEncryptionKeys = keys.ToDictionary(k => k.Id, k => k.Key) }));

    [Fact]
    public void Round_trips_and_never_holds_the_plaintext()
    {
        var cipher = Cipher("k1", ("k1", K1));
        var plaintext = Encoding.UTF8.GetBytes("the-plaintext-value");

        var sealedData = cipher.Seal(plaintext, "secret:A:v1");

        Assert.Equal("k1", sealedData.KeyId);
        Assert.Equal(-1, sealedData.Ciphertext.AsSpan().IndexOf(plaintext));
        Assert.Equal(plaintext, cipher.Open(sealedData, "secret:A:v1"));
    }

    [Fact]
    public void Each_value_gets_its_own_data_key_and_nonce()
    {
        var cipher = Cipher("k1", ("k1", K1));
        var a = cipher.Seal("same"u8, "ctx");
        var b = cipher.Seal("same"u8, "ctx");

        Assert.NotEqual(a.Ciphertext, b.Ciphertext);
        Assert.NotEqual(a.WrappedDataKey, b.WrappedDataKey);
    }

    [Fact]
    public void Tampering_or_moving_a_ciphertext_to_another_secret_fails()
    {
        var cipher = Cipher("k1", ("k1", K1));
        var sealedData = cipher.Seal("value"u8, "secret:A:v1");
        var flipped = sealedData with { Ciphertext = [.. sealedData.Ciphertext] };
        flipped.Ciphertext[^1] ^= 1;
        var flippedKey = sealedData with { WrappedDataKey = [.. sealedData.WrappedDataKey] };
        flippedKey.WrappedDataKey[15] ^= 1;

        Assert.ThrowsAny<CryptographicException>(() => cipher.Open(flipped, "secret:A:v1"));
        Assert.ThrowsAny<CryptographicException>(() => cipher.Open(flippedKey, "secret:A:v1"));
        Assert.ThrowsAny<CryptographicException>(() => cipher.Open(sealedData, "secret:B:v1"));
        Assert.ThrowsAny<CryptographicException>(() => cipher.Open(sealedData, "secret:A:v2"));
    }

    [Fact]
    public void Rotation_reads_old_data_writes_new_and_rewrap_lets_the_old_key_go()
    {
        var old = Cipher("k1", ("k1", K1)).Seal("value"u8, "ctx");
        var both = Cipher("k2", ("k1", K1), ("k2", K2));

        Assert.Equal("value"u8.ToArray(), both.Open(old, "ctx"));
        Assert.Equal("k2", both.Seal("new"u8, "ctx").KeyId);
        var rewrapped = both.Rewrap(old);
        Assert.Equal("k2", rewrapped.KeyId);
        Assert.Equal(old.Ciphertext, rewrapped.Ciphertext); // only the data key is re-wrapped
        Assert.Equal("value"u8.ToArray(), Cipher("k2", ("k2", K2)).Open(rewrapped, "ctx"));
        Assert.ThrowsAny<CryptographicException>(() => Cipher("k2", ("k2", K2)).Open(old, "ctx"));
    }

    [Theory]
    [InlineData("short", "KeyEncryptionKeys:k1")]
    [InlineData("AAAA", "KeyEncryptionKeys:k1")]
    public void Bad_keys_fail_naming_the_setting(string key, string expected)
    {
        var e = Assert.Throws<InvalidOperationException>(() => Ring("k1", ("k1", key)));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Active_key_must_be_configured()
    {
        Assert.Contains("ActiveKeyId", Assert.Throws<InvalidOperationException>(() => Ring("", ("k1", K1))).Message);
        Assert.Contains("'k9'", Assert.Throws<InvalidOperationException>(() => Ring("k9", ("k1", K1))).Message);
    }

    [Fact]
    public void A_generated_random_string_is_accepted_as_a_key()
    {
        var generated = new string('x', 20) + Guid.NewGuid().ToString("N");
        var cipher = Cipher("k1", ("k1", generated));

        Assert.Equal("v"u8.ToArray(), cipher.Open(cipher.Seal("v"u8, "c"), "c"));
    }
}
