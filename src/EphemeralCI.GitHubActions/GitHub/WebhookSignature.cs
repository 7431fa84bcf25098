using System.Security.Cryptography;
using System.Text;

namespace EphemeralCI.GitHubActions.GitHub;

/// <summary><c>X-Hub-Signature-256: sha256=HEX(HMAC-SHA256(secret, body))</c>, compared in constant time.</summary>
public static class WebhookSignature
{
    public const string Header = "X-Hub-Signature-256";
    private const string Prefix = "sha256=";

    public static string Sign(string secret, ReadOnlySpan<byte> body) =>
        Prefix + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body));

    public static bool IsValid(string secret, ReadOnlySpan<byte> body, string? header)
    {
        if (string.IsNullOrEmpty(secret) || header is null || !header.StartsWith(Prefix, StringComparison.Ordinal)) return false;
        Span<byte> given = stackalloc byte[32];
        if (header.Length != Prefix.Length + 64 || !TryParseHex(header.AsSpan(Prefix.Length), given)) return false;
        Span<byte> expected = stackalloc byte[32];
        HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body, expected);
        return CryptographicOperations.FixedTimeEquals(expected, given);
    }

    private static bool TryParseHex(ReadOnlySpan<char> hex, Span<byte> into) =>
        Convert.FromHexString(hex, into, out _, out var written) == System.Buffers.OperationStatus.Done && written == into.Length;
}
