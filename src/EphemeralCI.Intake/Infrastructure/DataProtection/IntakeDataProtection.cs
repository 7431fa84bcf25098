using System.Security.Cryptography;
using System.Text;
using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.XmlEncryption;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Intake.Infrastructure.DataProtection;

/// <summary><c>Intake:DataProtection</c>: the deployment secret that encrypts the data-protection key ring at rest.</summary>
public sealed class IntakeDataProtectionOptions
{
    /// <summary>Base64 of 32 random bytes (or 43+ random characters). Wraps every key-ring key written from now on.</summary>
    public string KeyEncryptionKey { get; set; } = "";

    /// <summary>Earlier values of <see cref="KeyEncryptionKey"/>, still accepted for reading keys wrapped with them (rotation: docs/web-ui.md).</summary>
    public List<string> PreviousKeyEncryptionKeys { get; set; } = [];
}

/// <summary>
/// Data Protection for the intake (session cookie, antiforgery tokens, sealed job-spec values): one key ring
/// in the intake database shared by every replica under one application name, each key's XML wrapped with
/// AES-256-GCM under a key derived from <c>Intake:DataProtection:KeyEncryptionKey</c> (a key-ring row alone,
/// e.g. from a backup, opens nothing).
/// </summary>
public static class IntakeDataProtection
{
    public const string ApplicationName = "EphemeralCI.Intake";
    internal const string Setting = $"{IntakeOptions.Section}:DataProtection:KeyEncryptionKey";

    public static IServiceCollection AddIntakeDataProtection(this IServiceCollection services)
    {
        services.AddDataProtection()
            .SetApplicationName(ApplicationName)
            .PersistKeysToDbContext<IntakeDbContext>();
        services.AddOptions<KeyManagementOptions>()
            .Configure<IOptions<IntakeOptions>>((o, intake) => o.XmlEncryptor = new AesGcmXmlEncryptor(KeyRingKeys.From(intake.Value.DataProtection).Current));
        return services;
    }

    /// <summary>
    /// Run at start-up (after migrations): opens every live key of the ring, so a wrong or missing secret stops the
    /// start with a message that names the setting, instead of every session quietly failing later.
    /// </summary>
    public static void VerifyKeyRing(IServiceProvider services, DateTimeOffset now)
    {
        _ = KeyRingKeys.From(services.GetRequiredService<IOptions<IntakeOptions>>().Value.DataProtection);
        foreach (var key in services.GetRequiredService<IKeyManager>().GetAllKeys().Where(k => !k.IsRevoked && k.ExpirationDate > now))
        {
            try
            {
                _ = key.Descriptor;
            }
            catch (Exception e)
            {
                throw new InvalidOperationException(
                    $"The intake's data-protection key {key.KeyId} (in the data_protection_keys table) cannot be opened with '{Setting}' " +
                    $"or '{IntakeOptions.Section}:DataProtection:PreviousKeyEncryptionKeys': {e.Message} Set the secret this deployment used before " +
                    "(every replica needs the same one); see docs/web-ui.md, \"Sessions across replicas\".", e);
            }
        }
    }
}

/// <summary>The configured key-encryption keys, each derived with HKDF from its secret and known by a short id.</summary>
internal sealed record KeyRingKeys(KeyRingKey Current, IReadOnlyList<KeyRingKey> All)
{
    public static KeyRingKeys From(IntakeDataProtectionOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.KeyEncryptionKey))
        {
            throw new InvalidOperationException(
                $"Configuration setting '{IntakeDataProtection.Setting}' is missing: set it to base64 of 32 random bytes " +
                "(the same on every intake replica; `openssl rand -base64 32`). It encrypts the sign-in and antiforgery keys in the intake database.");
        }
        var current = KeyRingKey.Derive(options.KeyEncryptionKey, IntakeDataProtection.Setting);
        var previous = options.PreviousKeyEncryptionKeys.Where(k => !string.IsNullOrWhiteSpace(k))
            .Select((k, i) => KeyRingKey.Derive(k, $"{IntakeOptions.Section}:DataProtection:PreviousKeyEncryptionKeys:{i}"));
        return new(current, [current, .. previous]);
    }
}

internal sealed record KeyRingKey(string Id, byte[] Key)
{
    public static KeyRingKey Derive(string secret, string setting)
    {
        var material = Decode(secret.Trim(), setting);
        var key = HKDF.DeriveKey(HashAlgorithmName.SHA256, material, 32, info: "eci-intake-data-protection-kek"u8.ToArray());
        // The id says which secret wrapped a key (so a wrong one is named, not guessed); it reveals nothing of the key.
        var id = Convert.ToHexStringLower(HKDF.DeriveKey(HashAlgorithmName.SHA256, material, 6, info: "eci-intake-data-protection-kek-id"u8.ToArray()));
        return new(id, key);
    }

    private static byte[] Decode(string secret, string setting)
    {
        Span<byte> buffer = stackalloc byte[secret.Length];
        if (Convert.TryFromBase64String(secret, buffer, out var written) && written >= 32) return buffer[..written].ToArray();
        if (secret.Length >= 43) return Encoding.UTF8.GetBytes(secret);
        throw new InvalidOperationException($"Configuration setting '{setting}' is too short: use base64 of 32 random bytes or 43+ random characters.");
    }
}

/// <summary>Wraps a key-ring key's XML with AES-256-GCM: <c>&lt;encryptedKey kek="id"&gt;base64(nonce ‖ tag ‖ ciphertext)&lt;/encryptedKey&gt;</c>.</summary>
internal sealed class AesGcmXmlEncryptor(KeyRingKey kek) : IXmlEncryptor
{
    public EncryptedXmlInfo Encrypt(XElement plaintextElement)
    {
        var plain = Encoding.UTF8.GetBytes(plaintextElement.ToString(SaveOptions.DisableFormatting));
        var sealedBytes = new byte[12 + 16 + plain.Length];
        var nonce = sealedBytes.AsSpan(0, 12);
        RandomNumberGenerator.Fill(nonce);
        using (var aes = new AesGcm(kek.Key, 16))
        {
            aes.Encrypt(nonce, plain, sealedBytes.AsSpan(28), sealedBytes.AsSpan(12, 16), Encoding.UTF8.GetBytes(kek.Id));
        }
        CryptographicOperations.ZeroMemory(plain);
        var element = new XElement("encryptedKey",
            new XComment(" AES-256-GCM under Intake:DataProtection:KeyEncryptionKey "),
            new XAttribute("kek", kek.Id),
            Convert.ToBase64String(sealedBytes));
        return new EncryptedXmlInfo(element, typeof(AesGcmXmlDecryptor));
    }
}

/// <summary>Opens what <see cref="AesGcmXmlEncryptor"/> wrapped, with whichever configured secret has the recorded id. Built by Data Protection's activator.</summary>
internal sealed class AesGcmXmlDecryptor(IServiceProvider services) : IXmlDecryptor
{
    public XElement Decrypt(XElement encryptedElement)
    {
        var keys = KeyRingKeys.From(services.GetRequiredService<IOptions<IntakeOptions>>().Value.DataProtection);
        var id = (string?)encryptedElement.Attribute("kek");
        var kek = keys.All.FirstOrDefault(k => k.Id == id)
            ?? throw new CryptographicException($"It was encrypted with a key-encryption secret (id {id}) that is not configured (configured: {string.Join(", ", keys.All.Select(k => k.Id))}).");
        var sealedBytes = Convert.FromBase64String(encryptedElement.Value);
        if (sealedBytes.Length < 28) throw new CryptographicException("The encrypted key is truncated.");
        var plain = new byte[sealedBytes.Length - 28];
        using (var aes = new AesGcm(kek.Key, 16))
        {
            aes.Decrypt(sealedBytes.AsSpan(0, 12), sealedBytes.AsSpan(28), sealedBytes.AsSpan(12, 16), plain, Encoding.UTF8.GetBytes(kek.Id));
        }
        try
        {
            return XElement.Parse(Encoding.UTF8.GetString(plain));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }
}
