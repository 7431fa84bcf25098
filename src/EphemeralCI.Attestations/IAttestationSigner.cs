using System.Text.Json.Nodes;

namespace EphemeralCI.Attestations;

/// <summary>
/// Signs a job's statement with the secrets broker's ES256 key ring (the keys that sign job tokens,
/// published in its JWKS). The broker adds the secrets it issued to the job before it signs.
/// In process in the all-in-one server; over HTTP (<c>POST /internal/v1/attestations</c>) elsewhere.
/// </summary>
public interface IAttestationSigner
{
    Task<DsseEnvelope> SignAsync(AttestationRequest request, CancellationToken ct);
}

/// <summary>The statement to sign (as JSON, the broker completes it) and the job it is about.</summary>
public sealed record AttestationRequest(Guid JobId, JsonObject Statement);

/// <summary>The signer could not sign (down, refused); the attestation is tried again later.</summary>
public sealed class AttestationSigningException(string message, Exception? inner = null) : Exception(message, inner);
