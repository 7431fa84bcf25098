using System.Security.Cryptography;
using System.Text;

namespace EphemeralCI.SecretsBroker.Crypto;

/// <summary>Ciphertext plus its wrapped data key and the id of the key-encryption key that wrapped it.</summary>
public sealed record SealedData(byte[] Ciphertext, byte[] WrappedDataKey, string KeyId);

/// <summary>
/// Envelope encryption: every value gets a fresh random 256-bit data key; the value is sealed with
/// AES-GCM under that key, and the key is sealed with AES-GCM under the active key-encryption key.
/// The associated data binds a ciphertext to its place (e.g. secret name and version), so a row
/// copied onto another secret fails to decrypt instead of leaking. Layout of each blob: nonce(12) ‖ ciphertext ‖ tag(16).
/// </summary>
public sealed class EnvelopeCipher(KeyRing keys)
{
    private const int NonceSize = 12;
    private const int TagSize = 16;

    public SealedData Seal(ReadOnlySpan<byte> plaintext, string context)
    {
        Span<byte> dataKey = stackalloc byte[32];
        RandomNumberGenerator.Fill(dataKey);
        try
        {
            var ciphertext = SealWith(dataKey, plaintext, Encoding.UTF8.GetBytes("value:" + context));
            var wrapped = SealWith(keys.Get(keys.ActiveKeyId), dataKey, Encoding.UTF8.GetBytes("kek:" + keys.ActiveKeyId));
            return new SealedData(ciphertext, wrapped, keys.ActiveKeyId);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>Throws <see cref="CryptographicException"/> when anything was altered or the key is unknown.</summary>
    public byte[] Open(SealedData sealedData, string context)
    {
        var dataKey = OpenWith(keys.Get(sealedData.KeyId), sealedData.WrappedDataKey, Encoding.UTF8.GetBytes("kek:" + sealedData.KeyId));
        try
        {
            return OpenWith(dataKey, sealedData.Ciphertext, Encoding.UTF8.GetBytes("value:" + context));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>Re-wraps only the data key under the active key-encryption key; the value's ciphertext stays as it is.</summary>
    public SealedData Rewrap(SealedData sealedData)
    {
        if (sealedData.KeyId == keys.ActiveKeyId) return sealedData;
        var dataKey = OpenWith(keys.Get(sealedData.KeyId), sealedData.WrappedDataKey, Encoding.UTF8.GetBytes("kek:" + sealedData.KeyId));
        try
        {
            var wrapped = SealWith(keys.Get(keys.ActiveKeyId), dataKey, Encoding.UTF8.GetBytes("kek:" + keys.ActiveKeyId));
            return sealedData with { WrappedDataKey = wrapped, KeyId = keys.ActiveKeyId };
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    private static byte[] SealWith(ReadOnlySpan<byte> key, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        var blob = new byte[NonceSize + plaintext.Length + TagSize];
        var nonce = blob.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(key, TagSize);
        aes.Encrypt(nonce, plaintext, blob.AsSpan(NonceSize, plaintext.Length), blob.AsSpan(NonceSize + plaintext.Length), associatedData);
        return blob;
    }

    private static byte[] OpenWith(ReadOnlySpan<byte> key, byte[] blob, ReadOnlySpan<byte> associatedData)
    {
        if (blob.Length < NonceSize + TagSize) throw new CryptographicException("Sealed data is truncated.");
        var length = blob.Length - NonceSize - TagSize;
        var plaintext = new byte[length];
        using var aes = new AesGcm(key, TagSize);
        aes.Decrypt(blob.AsSpan(0, NonceSize), blob.AsSpan(NonceSize, length), blob.AsSpan(NonceSize + length), plaintext, associatedData);
        return plaintext;
    }
}
