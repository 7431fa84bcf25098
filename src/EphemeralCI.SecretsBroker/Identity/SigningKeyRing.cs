using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using EphemeralCI.SecretsBroker.Audit;
using EphemeralCI.SecretsBroker.Crypto;
using EphemeralCI.SecretsBroker.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace EphemeralCI.SecretsBroker.Identity;

/// <summary>A public key as published in the JWKS (RFC 7517, EC P-256).</summary>
public sealed record PublicJwk(
    [property: JsonPropertyName("kty")] string Kty,
    [property: JsonPropertyName("crv")] string Crv,
    [property: JsonPropertyName("x")] string X,
    [property: JsonPropertyName("y")] string Y,
    [property: JsonPropertyName("kid")] string Kid,
    [property: JsonPropertyName("use")] string Use,
    [property: JsonPropertyName("alg")] string Alg);

/// <summary>An operator's rotation: <paramref name="Kid"/> signs from now on.</summary>
/// <param name="PreviousKid">The key that signed until now (still published for the overlap, so tokens it signed keep validating); null if none did.</param>
public sealed record SigningKeyRotation(string Kid, string? PreviousKid);

/// <summary>
/// The ES256 keys that sign job tokens. Private halves are stored sealed under the key-encryption
/// key (so every replica shares them and a database dump alone cannot forge tokens). One key signs
/// at a time; when it has signed for <c>SigningKeyRotation</c> a new one takes over and the old one
/// stays published for <c>SigningKeyOverlap</c>, so tokens it signed keep validating until they expire.
/// A key that no longer signs loses its private half; its public half stays in the attestation key set
/// for good, so a job's attestation can be checked years later while no old key can sign anything new.
/// </summary>
public sealed class SigningKeyRing(IServiceScopeFactory scopes, EnvelopeCipher cipher, IOptions<SecretsBrokerOptions> options, TimeProvider clock)
{
    private static readonly TimeSpan MinReloadGap = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan SignerRecheck = TimeSpan.FromMinutes(1);
    private readonly SemaphoreSlim _gate = new(1, 1);
    private volatile Snapshot _snapshot = new([], null, DateTimeOffset.MinValue);

    private sealed record LoadedKey(string Kid, PublicJwk Jwk, ECDsaSecurityKey PublicKey, DateTimeOffset SignsUntil, DateTimeOffset PublishedUntil, ECDsa? Private);
    private sealed record Snapshot(IReadOnlyList<LoadedKey> Keys, LoadedKey? Signer, DateTimeOffset LoadedAt);

    /// <summary>The key to sign with now, creating one when none is current. Looked up again at least every minute: another replica may have rotated early.</summary>
    public async Task<(string Kid, SecurityKey Key)> GetSignerAsync(CancellationToken ct)
    {
        var s = _snapshot;
        var now = clock.GetUtcNow();
        if (s.Signer is null || s.Signer.SignsUntil <= now || now - s.LoadedAt > SignerRecheck) s = await EnsureCurrentAsync(ct);
        return (s.Signer!.Kid, new ECDsaSecurityKey(s.Signer.Private!) { KeyId = s.Signer.Kid });
    }

    /// <summary>Keys tokens may be signed with. An unknown kid reloads from the database (another replica may have rotated).</summary>
    public async ValueTask<IReadOnlyList<SecurityKey>> GetValidationKeysAsync(string? kid, CancellationToken ct)
    {
        var s = _snapshot;
        var now = clock.GetUtcNow();
        if (kid is not null && s.Keys.All(k => k.Kid != kid) && now - s.LoadedAt > MinReloadGap) s = await ReloadAsync(ct);
        return [.. s.Keys.Where(k => k.PublishedUntil > now).Select(k => (SecurityKey)k.PublicKey)];
    }

    public async Task<IReadOnlyList<PublicJwk>> GetPublishedAsync(CancellationToken ct)
    {
        var s = _snapshot;
        var now = clock.GetUtcNow();
        if (now - s.LoadedAt > TimeSpan.FromMinutes(1)) s = await ReloadAsync(ct);
        return [.. s.Keys.Where(k => k.PublishedUntil > now).Select(k => k.Jwk)];
    }

    /// <summary>
    /// Every key that ever signed, newest first (public halves): what verifies attestations. Not for job
    /// tokens: a token is accepted only under <see cref="GetValidationKeysAsync"/>.
    /// </summary>
    public async Task<IReadOnlyList<PublicJwk>> GetEverPublishedAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SecretsDbContext>();
        var rows = await db.SigningKeys.AsNoTracking().OrderByDescending(k => k.CreatedAt).Select(k => k.PublicJwk).ToListAsync(ct);
        return [.. rows.Select(json => JsonSerializer.Deserialize<PublicJwk>(json)!)];
    }

    /// <summary>
    /// Loads the keys, creates a new signer when none is current, and destroys the private half of every
    /// key that stopped signing (start-up and the periodic rotation check).
    /// </summary>
    public async Task<IReadOnlyList<PublicJwk>> RotateIfDueAsync(CancellationToken ct)
    {
        var keys = (await EnsureCurrentAsync(ct)).Keys.Select(k => k.Jwk).ToList();
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SecretsDbContext>();
        var now = clock.GetUtcNow();
        // The blob test runs in memory: SQLite (the all-in-one server) cannot translate a byte[]'s length.
        var retired = (await db.SigningKeys.Where(k => k.SignsUntil <= now).ToListAsync(ct))
            .Where(k => k.PrivateKeyCiphertext.Length > 0).ToList();
        foreach (var key in retired)
        {
            key.PrivateKeyCiphertext = [];
            key.WrappedDataKey = [];
            db.Audit(clock, "secrets-broker", AuditActions.SigningKeyRetired, detail: $"kid={key.Kid}");
        }
        if (retired.Count > 0) await db.SaveChangesAsync(ct);
        return keys;
    }

    /// <summary>
    /// Ends the current key's term now (an operator's rotation: suspected exposure, a drill): a new key signs from
    /// now on, the old one stays published for the overlap (tokens it signed keep validating) and loses its private
    /// half at once. Other replicas switch at their next look (within a minute; until then they sign with the old
    /// key, which still validates). Audited.
    /// </summary>
    public async Task<SigningKeyRotation> RotateNowAsync(string actor, CancellationToken ct)
    {
        string? previous;
        await _gate.WaitAsync(ct);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SecretsDbContext>();
            var now = clock.GetUtcNow();
            var current = await db.SigningKeys.Where(k => k.SignsUntil > now).OrderByDescending(k => k.CreatedAt).ToListAsync(ct);
            previous = current.FirstOrDefault()?.Kid;
            foreach (var key in current)
            {
                key.SignsUntil = now;
                key.PublishedUntil = now + options.Value.SigningKeyOverlap;
                db.Audit(clock, actor, AuditActions.SigningKeyRotated, detail: $"kid={key.Kid}");
            }
            await db.SaveChangesAsync(ct);
        }
        finally
        {
            _gate.Release();
        }
        // A new signer, and the old one's private half destroyed.
        await RotateIfDueAsync(ct);
        var (kid, _) = await GetSignerAsync(ct);
        return new SigningKeyRotation(kid, previous);
    }

    private async Task<Snapshot> EnsureCurrentAsync(CancellationToken ct)
    {
        var s = await ReloadAsync(ct);
        if (s.Signer is not null) return s;
        await _gate.WaitAsync(ct);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SecretsDbContext>();
            var now = clock.GetUtcNow();
            using var ecdsa = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var kid = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(12));
            var p = ecdsa.ExportParameters(false);
            var jwk = new PublicJwk("EC", "P-256", Base64UrlEncoder.Encode(p.Q.X!), Base64UrlEncoder.Encode(p.Q.Y!), kid, "sig", "ES256");
            var sealedKey = cipher.Seal(ecdsa.ExportPkcs8PrivateKey(), Context(kid));
            var signsUntil = now + options.Value.SigningKeyRotation;
            db.SigningKeys.Add(new SigningKey
            {
                Kid = kid,
                PublicJwk = JsonSerializer.Serialize(jwk),
                PrivateKeyCiphertext = sealedKey.Ciphertext,
                WrappedDataKey = sealedKey.WrappedDataKey,
                KeyId = sealedKey.KeyId,
                CreatedAt = now,
                SignsUntil = signsUntil,
                PublishedUntil = signsUntil + options.Value.SigningKeyOverlap,
            });
            db.Audit(clock, "secrets-broker", AuditActions.SigningKeyCreated, detail: $"kid={kid}");
            await db.SaveChangesAsync(ct);
        }
        finally
        {
            _gate.Release();
        }
        return await ReloadAsync(ct);
    }

    private async Task<Snapshot> ReloadAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SecretsDbContext>();
        var now = clock.GetUtcNow();
        var rows = await db.SigningKeys.AsNoTracking().Where(k => k.PublishedUntil > now).OrderByDescending(k => k.CreatedAt).ToListAsync(ct);
        var previous = _snapshot.Keys.ToDictionary(k => k.Kid);
        var keys = new List<LoadedKey>();
        LoadedKey? signer = null;
        foreach (var row in rows)
        {
            if (!previous.TryGetValue(row.Kid, out var key))
            {
                var jwk = JsonSerializer.Deserialize<PublicJwk>(row.PublicJwk)!;
                var publicKey = new ECDsaSecurityKey(ECDsa.Create(new ECParameters
                {
                    Curve = ECCurve.NamedCurves.nistP256,
                    Q = new ECPoint { X = Base64UrlEncoder.DecodeBytes(jwk.X), Y = Base64UrlEncoder.DecodeBytes(jwk.Y) },
                })) { KeyId = row.Kid };
                key = new LoadedKey(row.Kid, jwk, publicKey, row.SignsUntil, row.PublishedUntil, null);
            }
            // Only the newest current key signs; its private half is opened once and kept in memory.
            if (signer is null && row.SignsUntil > now)
            {
                if (key.Private is null)
                {
                    var pkcs8 = cipher.Open(new SealedData(row.PrivateKeyCiphertext, row.WrappedDataKey, row.KeyId), Context(row.Kid));
                    var ecdsa = ECDsa.Create();
                    ecdsa.ImportPkcs8PrivateKey(pkcs8, out _);
                    CryptographicOperations.ZeroMemory(pkcs8);
                    key = key with { Private = ecdsa };
                }
                signer = key;
            }
            keys.Add(key);
        }
        var snapshot = new Snapshot(keys, signer, clock.GetUtcNow());
        _snapshot = snapshot;
        return snapshot;
    }

    internal static string Context(string kid) => "signing-key:" + kid;
}
