using System.Buffers.Text;
using EphemeralCI.Attestations;
using EphemeralCI.JobTokens;
using Microsoft.IdentityModel.Tokens;
using JsonWebKey = EphemeralCI.Attestations.JsonWebKey;
using JsonWebKeySet = EphemeralCI.Attestations.JsonWebKeySet;

namespace EphemeralCI.Intake.Attestations;

/// <summary>
/// Verifies a job's attestation on the server for the web UI's "verified" mark, with the same
/// <see cref="AttestationVerifier"/> as <c>eci jobs verify</c>, against the broker's public keys as this
/// process already trusts them for job tokens (<see cref="IJobTokenKeySource"/>: the broker's JWKS, or its
/// key ring in the all-in-one server). No key source (shared-key tokens only): no keys, so never "verified".
/// </summary>
public sealed class AttestationCheck(IJobTokenKeySource? keys = null)
{
    public async Task<AttestationVerification> VerifyAsync(DsseEnvelope envelope, ExpectedSubject expected, CancellationToken ct)
    {
        var kid = envelope.Signatures?.FirstOrDefault()?.KeyId;
        var securityKeys = keys is null ? [] : await keys.GetKeysAsync(kid, ct);
        return AttestationVerifier.Verify(envelope, new JsonWebKeySet([.. securityKeys.Select(ToJwk).OfType<JsonWebKey>()]), expected);
    }

    /// <summary>A P-256 public key as a JWK, from either kind of key a source hands out; null for any other key.</summary>
    private static JsonWebKey? ToJwk(SecurityKey key)
    {
        switch (key)
        {
            case Microsoft.IdentityModel.Tokens.JsonWebKey { Kty: "EC", Crv: "P-256" } jwk:
                return new JsonWebKey(jwk.Kty, jwk.Crv, jwk.X, jwk.Y, jwk.KeyId ?? jwk.Kid);
            case ECDsaSecurityKey ec:
                var q = ec.ECDsa.ExportParameters(includePrivateParameters: false);
                if (q.Curve.Oid?.Value != "1.2.840.10045.3.1.7" /* P-256 */ || q.Q.X is null || q.Q.Y is null) return null;
                return new JsonWebKey("EC", "P-256", Base64Url.EncodeToString(q.Q.X), Base64Url.EncodeToString(q.Q.Y), ec.KeyId);
            default:
                return null;
        }
    }
}
