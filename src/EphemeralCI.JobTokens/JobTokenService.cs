using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace EphemeralCI.JobTokens;

/// <summary>
/// Checks job tokens, and mints the interim HS256 ones. Stateless; one instance per process.
/// With an <see cref="IJobTokenKeySource"/> registered (the broker's key ring, or the broker's JWKS)
/// only ES256 tokens signed by those keys validate; otherwise the shared-key HS256 path is used.
/// A runner sends the same token with every request, so a token that validated is remembered (by its
/// SHA-256, never the token itself) for <see cref="ValidatedLifetime"/> and until it expires: repeated
/// requests skip the signature check (ES256 costs ~0.2 ms and a few kB of garbage per request).
/// </summary>
public sealed class JobTokenService(IOptions<JobTokenOptions> options, TimeProvider clock, IJobTokenKeySource? keySource = null)
{
    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = false, MapInboundClaims = false };
    private readonly Lazy<SymmetricSecurityKey> _key = new(() => new SymmetricSecurityKey(options.Value.KeyBytes()));
    // Bounded: only valid tokens are stored, one per running job; when full, new ones go unremembered (and are
    // checked in full) until the cache has compacted.
    private readonly MemoryCache _validated = new(new MemoryCacheOptions { SizeLimit = 10_000 });

    /// <summary>
    /// How long a validated token is trusted without checking its signature again: it bounds how long a key
    /// withdrawn from the key ring (rotation, compromise) still admits the tokens it signed.
    /// </summary>
    public static readonly TimeSpan ValidatedLifetime = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan ClockSkew = TimeSpan.FromSeconds(5);

    /// <summary>True when tokens are validated against asymmetric keys (the broker's) rather than the shared key.</summary>
    public bool UsesBrokerKeys => keySource is not null;

    public string Issue(Guid jobId, string repository, string gitRef, DateTimeOffset jobDeadline, int attempt = 1)
    {
        var now = clock.GetUtcNow();
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = options.Value.Issuer,
            Audience = options.Value.Audience,
            IssuedAt = now.UtcDateTime,
            NotBefore = now.UtcDateTime.AddSeconds(-5),
            Expires = (jobDeadline + options.Value.ExpiryMargin).UtcDateTime,
            SigningCredentials = new SigningCredentials(_key.Value, SecurityAlgorithms.HmacSha256),
            Claims = new Dictionary<string, object>
            {
                [JwtRegisteredClaimNames.Sub] = $"job:{jobId}",
                [JwtRegisteredClaimNames.Jti] = Guid.NewGuid().ToString("N"),
                [JobTokenClaims.JobIdClaim] = jobId.ToString(),
                [JobTokenClaims.RepositoryClaim] = repository,
                [JobTokenClaims.RefClaim] = gitRef,
            },
        };
        if (attempt > 1) descriptor.Claims[JobTokenClaims.AttemptClaim] = attempt;
        return _handler.CreateToken(descriptor);
    }

    /// <summary>Returns the claims of a valid token, or null for anything expired, tampered or foreign.</summary>
    public async Task<JobTokenClaims?> ValidateAsync(string token, CancellationToken cancellationToken = default)
    {
        var id = Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
        var now = clock.GetUtcNow();
        if (_validated.TryGetValue(id, out Validated? known) && known!.At + ValidatedLifetime > now)
        {
            return known.Claims.ExpiresAt > now - ClockSkew ? known.Claims : null;
        }
        var claims = await ValidateSignedAsync(token, cancellationToken);
        if (claims is not null)
        {
            // The cache's own expiry only frees memory; the checks above use the injected clock.
            _validated.Set(id, new Validated(claims, now), new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = ValidatedLifetime });
        }
        return claims;
    }

    private sealed record Validated(JobTokenClaims Claims, DateTimeOffset At);

    private async Task<JobTokenClaims?> ValidateSignedAsync(string token, CancellationToken cancellationToken)
    {
        var parameters = new TokenValidationParameters
        {
            ValidIssuer = options.Value.Issuer,
            ValidAudience = options.Value.Audience,
            ClockSkew = ClockSkew,
            LifetimeValidator = (notBefore, expires, _, p) =>
            {
                var now = clock.GetUtcNow().UtcDateTime;
                return expires is { } e && e > now - p.ClockSkew && (notBefore is null || notBefore <= now + p.ClockSkew);
            },
        };
        if (keySource is null)
        {
            parameters.IssuerSigningKey = _key.Value;
            parameters.ValidAlgorithms = [SecurityAlgorithms.HmacSha256];
        }
        else
        {
            string? kid;
            try
            {
                kid = _handler.ReadJsonWebToken(token).Kid;
            }
            catch (ArgumentException)
            {
                return null; // not even a JWT
            }
            // Never the shared key here: with broker keys configured an HS256 token is a forgery attempt.
            parameters.IssuerSigningKeys = await keySource.GetKeysAsync(kid, cancellationToken);
            parameters.ValidAlgorithms = [SecurityAlgorithms.EcdsaSha256];
        }

        var result = await _handler.ValidateTokenAsync(token, parameters);
        if (!result.IsValid) return null;
        var claims = result.ClaimsIdentity;
        if (!Guid.TryParse(claims.FindFirst(JobTokenClaims.JobIdClaim)?.Value, out var jobId)) return null;
        var attempt = JobTokenClaims.ParseAttempt(claims.FindFirst(JobTokenClaims.AttemptClaim)?.Value);
        if (attempt == 0) return null;
        return new JobTokenClaims(
            jobId,
            claims.FindFirst(JobTokenClaims.RepositoryClaim)?.Value ?? "",
            claims.FindFirst(JobTokenClaims.RefClaim)?.Value ?? "",
            claims.FindFirst(JwtRegisteredClaimNames.Jti)?.Value ?? "",
            result.SecurityToken.ValidTo)
        {
            CommitSha = claims.FindFirst(JobTokenClaims.CommitShaClaim)?.Value,
            Template = claims.FindFirst(JobTokenClaims.TemplateClaim)?.Value,
            Environment = claims.FindFirst(JobTokenClaims.EnvironmentClaim)?.Value,
            Attempt = attempt,
        };
    }

    public static ClaimsPrincipal ToPrincipal(JobTokenClaims claims, string scheme) => new(new ClaimsIdentity(
    [
        new Claim(ClaimTypes.NameIdentifier, $"job:{claims.JobId}"),
        new Claim(JobTokenClaims.JobIdClaim, claims.JobId.ToString()),
        new Claim(JobTokenClaims.RepositoryClaim, claims.Repository),
        new Claim(JobTokenClaims.RefClaim, claims.Ref),
        new Claim(JobTokenClaims.AttemptClaim, claims.Attempt.ToString(System.Globalization.CultureInfo.InvariantCulture)),
    ], scheme));
}
