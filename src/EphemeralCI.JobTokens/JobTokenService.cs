using System.Security.Claims;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace EphemeralCI.JobTokens;

/// <summary>Mints and checks job tokens (HS256 JWTs). Stateless; one instance per process.</summary>
public sealed class JobTokenService(IOptions<JobTokenOptions> options, TimeProvider clock)
{
    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = false };
    private readonly Lazy<SymmetricSecurityKey> _key = new(() => new SymmetricSecurityKey(options.Value.KeyBytes()));

    public string Issue(Guid jobId, string repository, string gitRef, DateTimeOffset jobDeadline)
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
        return _handler.CreateToken(descriptor);
    }

    /// <summary>Returns the claims of a valid token, or null for anything expired, tampered or foreign.</summary>
    public async Task<JobTokenClaims?> ValidateAsync(string token)
    {
        var result = await _handler.ValidateTokenAsync(token, new TokenValidationParameters
        {
            ValidIssuer = options.Value.Issuer,
            ValidAudience = options.Value.Audience,
            IssuerSigningKey = _key.Value,
            ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
            ClockSkew = TimeSpan.FromSeconds(5),
            LifetimeValidator = (notBefore, expires, _, p) =>
            {
                var now = clock.GetUtcNow().UtcDateTime;
                return expires is { } e && e > now - p.ClockSkew && (notBefore is null || notBefore <= now + p.ClockSkew);
            },
        });
        if (!result.IsValid) return null;
        var claims = result.ClaimsIdentity;
        if (!Guid.TryParse(claims.FindFirst(JobTokenClaims.JobIdClaim)?.Value, out var jobId)) return null;
        return new JobTokenClaims(
            jobId,
            claims.FindFirst(JobTokenClaims.RepositoryClaim)?.Value ?? "",
            claims.FindFirst(JobTokenClaims.RefClaim)?.Value ?? "",
            claims.FindFirst(JwtRegisteredClaimNames.Jti)?.Value ?? "",
            result.SecurityToken.ValidTo);
    }

    public static ClaimsPrincipal ToPrincipal(JobTokenClaims claims, string scheme) => new(new ClaimsIdentity(
    [
        new Claim(ClaimTypes.NameIdentifier, $"job:{claims.JobId}"),
        new Claim(JobTokenClaims.JobIdClaim, claims.JobId.ToString()),
        new Claim(JobTokenClaims.RepositoryClaim, claims.Repository),
        new Claim(JobTokenClaims.RefClaim, claims.Ref),
    ], scheme));
}
