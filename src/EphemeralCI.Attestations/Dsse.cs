using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;

namespace EphemeralCI.Attestations;

/// <summary>A DSSE envelope (https://github.com/secure-systems-lab/dsse, envelope.md): the payload in base64, and its signatures.</summary>
public sealed record DsseEnvelope(
    [property: JsonPropertyName("payloadType")] string PayloadType,
    [property: JsonPropertyName("payload")] string Payload,
    [property: JsonPropertyName("signatures")] IReadOnlyList<DsseSignature> Signatures);

/// <summary>One signature: the signing key's id (the JWKS <c>kid</c>) and the signature in base64.</summary>
public sealed record DsseSignature(
    [property: JsonPropertyName("keyid")] string KeyId,
    [property: JsonPropertyName("sig")] string Sig);

/// <summary>DSSE v1: what is signed is the pre-authentication encoding of type and payload, never the payload alone.</summary>
public static class Dsse
{
    /// <summary>
    /// PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths as ASCII decimal of
    /// the byte counts. The type is bound into the signature, and the prefix keeps a DSSE signature from
    /// being taken for a JWT's (the same keys sign job tokens).
    /// </summary>
    public static byte[] PreAuthEncoding(string payloadType, ReadOnlySpan<byte> payload)
    {
        var type = Encoding.UTF8.GetBytes(payloadType);
        var header = Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"DSSEv1 {type.Length} "));
        var middle = Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $" {payload.Length} "));
        var result = new byte[header.Length + type.Length + middle.Length + payload.Length];
        header.CopyTo(result, 0);
        type.CopyTo(result, header.Length);
        middle.CopyTo(result, header.Length + type.Length);
        payload.CopyTo(result.AsSpan(header.Length + type.Length + middle.Length));
        return result;
    }

    /// <summary>
    /// Signs with ECDSA P-256 / SHA-256. The signature is ASN.1 DER (as sigstore, in-toto and Python's
    /// <c>cryptography</c> expect for ECDSA in DSSE), not the JWS r‖s form.
    /// </summary>
    public static DsseEnvelope Sign(string payloadType, byte[] payload, ECDsa key, string keyId)
    {
        var sig = key.SignData(PreAuthEncoding(payloadType, payload), HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        return new DsseEnvelope(payloadType, Convert.ToBase64String(payload), [new DsseSignature(keyId, Convert.ToBase64String(sig))]);
    }

    /// <summary>Whether <paramref name="signature"/> is a valid DER ECDSA signature of the envelope by <paramref name="key"/>.</summary>
    public static bool Verify(string payloadType, byte[] payload, byte[] signature, ECDsa key)
    {
        try
        {
            return key.VerifyData(PreAuthEncoding(payloadType, payload), signature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        }
        catch (CryptographicException)
        {
            return false;
        }
    }
}
