using Microsoft.IdentityModel.Tokens;

namespace EphemeralCI.JobTokens;

/// <summary>
/// Public keys that verify asymmetric (broker-issued) job tokens. When one is registered,
/// <see cref="JobTokenService.ValidateAsync"/> accepts only tokens signed by these keys (ES256);
/// without one it falls back to the interim shared-key HS256 tokens.
/// The broker registers its own key ring; other services fetch the broker's JWKS (<see cref="JwksKeySource"/>).
/// </summary>
public interface IJobTokenKeySource
{
    /// <summary>The keys currently trusted. <paramref name="kid"/> is the token's key id; a source may refresh when it does not know it.</summary>
    ValueTask<IReadOnlyList<SecurityKey>> GetKeysAsync(string? kid, CancellationToken cancellationToken = default);
}

/// <summary>Who mints a job's token when its runner is created.</summary>
public interface IJobTokenIssuer
{
    Task<string> IssueAsync(JobTokenRequest request, CancellationToken cancellationToken = default);
}

/// <summary>What the issuer needs to know about a job to mint its token.</summary>
public sealed record JobTokenRequest(
    Guid JobId,
    string Repository,
    string Ref,
    DateTimeOffset Deadline,
    string? CommitSha = null,
    string? Template = null,
    string? Environment = null,
    int Attempt = 1)
{
    /// <summary>The first attempt and up to three retries after a lost runner (<c>retry.infrastructure</c> ≤ 3).</summary>
    public const int MaxAttempt = 4;
}
