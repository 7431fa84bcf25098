using EphemeralCI.SecretsBroker.Infrastructure;

namespace EphemeralCI.SecretsBroker.Audit;

/// <summary>The audit log's vocabulary: stable strings, since exports are read by other tools.</summary>
public static class AuditActions
{
    public const string SecretCreated = "secret.created";
    public const string SecretUpdated = "secret.updated";
    public const string SecretDeleted = "secret.deleted";
    public const string PolicyChanged = "policy.changed";
    public const string TokenIssued = "token.issued";
    public const string ExchangeGranted = "exchange.granted";
    public const string ExchangeDenied = "exchange.denied";
    public const string ExchangeReplayed = "exchange.replayed";
    public const string TokenRevoked = "token.revoked";
    public const string KeysRewrapped = "keys.rewrapped";
    public const string SigningKeyCreated = "signing-key.created";
    /// <summary>An operator ended the signing key's term early (suspected exposure, a drill): a new key signs from now on.</summary>
    public const string SigningKeyRotated = "signing-key.rotated";
    /// <summary>A key stopped signing: its private half was destroyed (its public half still verifies attestations).</summary>
    public const string SigningKeyRetired = "signing-key.retired";
    public const string OperatorSecretRead = "operator-secret.read";
    public const string OperatorSecretMissing = "operator-secret.missing";
}

/// <summary>Adds audit lines to the context; the caller's SaveChanges writes them with the change they describe.</summary>
public static class AuditLog
{
    public static void Audit(this SecretsDbContext db, TimeProvider clock, string actor, string action,
        string? secretName = null, Guid? jobId = null, string? repository = null, string? gitRef = null,
        string? tokenId = null, string? detail = null, int? attempt = null) =>
        db.AuditEntries.Add(new AuditEntry
        {
            At = clock.GetUtcNow(),
            Actor = actor,
            Action = action,
            SecretName = secretName,
            JobId = jobId,
            Repository = repository,
            Ref = gitRef,
            TokenId = tokenId,
            Attempt = attempt,
            Detail = detail is { Length: > 2048 } ? detail[..2048] : detail,
        });
}
