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
            byte[] bytes;
            try
            {
                bytes = Convert.FromBase64String(value ?? "");
            }
            catch (FormatException)
            {
                throw new InvalidOperationException($"Configuration setting '{SecretsBrokerOptions.Section}:KeyEncryptionKeys:{id}' is not base64.");
            }
            if (bytes.Length != 32)
            {
                throw new InvalidOperationException(
                    $"Configuration setting '{SecretsBrokerOptions.Section}:KeyEncryptionKeys:{id}' must be base64 of exactly 32 bytes (it has {bytes.Length}).");
            }
            _keys[id] = bytes;
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

    public IReadOnlyCollection<string> KeyIds => _keys.Keys;

    internal byte[] Get(string keyId) => _keys.TryGetValue(keyId, out var key)
        ? key
        : throw new CryptographicException($"Key-encryption key '{keyId}' is not configured: add it to {SecretsBrokerOptions.Section}:KeyEncryptionKeys.");
}
