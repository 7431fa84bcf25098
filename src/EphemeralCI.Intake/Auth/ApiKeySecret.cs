using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace EphemeralCI.Intake.Auth;

/// <summary>
/// The format of an API key: <c>eci_</c> followed by base64url of 32 random bytes. The first
/// <see cref="PrefixLength"/> characters are a lookup handle that may be shown and stored; the
/// rest never leaves the key's owner (we keep only a SHA-256 of the whole key).
/// </summary>
public static class ApiKeySecret
{
    public const string Marker = "eci_";
    public const int EntropyBytes = 32;
    public const int PrefixLength = 12; // "eci_" + 8 characters
    /// <summary>Longest key we will hash: anything longer is garbage, not a key.</summary>
    public const int MaxLength = 256;

    private static readonly int MinLength = Marker.Length + Base64Url.GetEncodedLength(EntropyBytes);

    public static string Generate() =>
        Marker + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(EntropyBytes));

    /// <summary>True for a string shaped like one of our keys (marker, base64url, at least 32 bytes).</summary>
    public static bool IsWellFormed(string? key) =>
        key is not null
        && key.Length >= MinLength && key.Length <= MaxLength
        && key.StartsWith(Marker, StringComparison.Ordinal)
        && key.AsSpan(Marker.Length).IndexOfAnyExcept(Base64UrlAlphabet) < 0;

    public static string PrefixOf(string key) => key[..PrefixLength];

    public static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    /// <summary>Constant-time comparison of the presented key's hash with a stored one.</summary>
    public static bool Matches(string presented, byte[] storedHash) =>
        CryptographicOperations.FixedTimeEquals(Hash(presented), storedHash);

    private static readonly System.Buffers.SearchValues<char> Base64UrlAlphabet =
        System.Buffers.SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
}
