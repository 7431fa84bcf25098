using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace EphemeralCI.SecretsBroker.Crypto;

/// <summary>
/// The key-encryption keys from configuration. Validated once at start-up so a typo in a key fails
/// the service before it accepts a secret it could not read back.
/// </summary>
public sealed class KeyRing
{
    private readonly Dictionary<string, byte[]> _keys;

    public KeyRing(IOptions<SecretsBrokerOptions> options)
    {
        var o = options.Value;
        _keys = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (id, value) in o.KeyEncryptionKeys)
        {
            _keys[id] = Decode(id, value);
        }
        if (string.IsNullOrWhiteSpace(o.ActiveKeyId))
        {
            throw new InvalidOperationException(
                $"Configuration setting '{SecretsBrokerOptions.Section}:ActiveKeyId' is missing: name one of '{SecretsBrokerOptions.Section}:KeyEncryptionKeys'.");
        }
        if (!_keys.ContainsKey(o.ActiveKeyId))
        {
            throw new InvalidOperationException(
                $"Configuration setting '{SecretsBrokerOptions.Section}:ActiveKeyId' names '{o.ActiveKeyId}', which is not among '{SecretsBrokerOptions.Section}:KeyEncryptionKeys'.");
        }
        ActiveKeyId = o.ActiveKeyId;
    }

    public string ActiveKeyId { get; }

    /// <summary>
    /// Base64 of exactly 32 bytes, or a generated random string of 43+ characters (what the AppHost's
    /// generated parameters are; ~256 bits of entropy), stretched to 32 bytes with HKDF-SHA256.
    /// </summary>
    internal static byte[] Decode(string id, string? value)
    {
        var setting = $"{SecretsBrokerOptions.Section}:KeyEncryptionKeys:{id}";
        if (string.IsNullOrWhiteSpace(value)) throw new InvalidOperationException($"Configuration setting '{setting}' is empty.");
        try
        {
            var bytes = Convert.FromBase64String(value);
            if (bytes.Length == 32) return bytes;
        }
        catch (FormatException) { /* not base64: maybe a generated random string */ }
        if (value.Length >= 43)
        {
            return HKDF.DeriveKey(HashAlgorithmName.SHA256, System.Text.Encoding.UTF8.GetBytes(value), 32, info: "eci-kek"u8.ToArray());
        }
        throw new InvalidOperationException(
            $"Configuration setting '{setting}' must be base64 of exactly 32 random bytes, or a random string of at least 43 characters.");
    }

    public IReadOnlyCollection<string> KeyIds => _keys.Keys;

    internal byte[] Get(string keyId) => _keys.TryGetValue(keyId, out var key)
        ? key
        : throw new CryptographicException($"Key-encryption key '{keyId}' is not configured: add it to {SecretsBrokerOptions.Section}:KeyEncryptionKeys.");
}
