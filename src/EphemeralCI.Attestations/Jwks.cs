using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace EphemeralCI.Attestations;

/// <summary>A JSON Web Key Set (RFC 7517) as the secrets broker publishes it at <c>/.well-known/jwks.json</c>.</summary>
public sealed record JsonWebKeySet([property: JsonPropertyName("keys")] IReadOnlyList<JsonWebKey> Keys)
{
    public static JsonWebKeySet Parse(string json) =>
        JsonSerializer.Deserialize<JsonWebKeySet>(json) is { Keys: not null } set ? set : throw new FormatException("not a JSON Web Key Set (no \"keys\")");

    /// <summary>The P-256 public key with this id, or null when the set has none (or it is of another kind).</summary>
    public ECDsa? FindP256(string keyId)
    {
        var jwk = Keys.FirstOrDefault(k => k.Kid == keyId);
        if (jwk is not { Kty: "EC", Crv: "P-256", X: { } x, Y: { } y }) return null;
        try
        {
            return ECDsa.Create(new ECParameters
            {
                Curve = ECCurve.NamedCurves.nistP256,
                Q = new ECPoint { X = Base64Url.DecodeFromChars(x), Y = Base64Url.DecodeFromChars(y) },
            });
        }
        catch (Exception ex) when (ex is FormatException or CryptographicException)
        {
            return null;
        }
    }
}

public sealed record JsonWebKey(
    [property: JsonPropertyName("kty")] string? Kty,
    [property: JsonPropertyName("crv")] string? Crv,
    [property: JsonPropertyName("x")] string? X,
    [property: JsonPropertyName("y")] string? Y,
    [property: JsonPropertyName("kid")] string? Kid,
    [property: JsonPropertyName("alg")] string? Alg = null,
    [property: JsonPropertyName("use")] string? Use = null);
