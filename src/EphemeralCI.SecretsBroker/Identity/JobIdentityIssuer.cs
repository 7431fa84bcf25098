using EphemeralCI.JobTokens;
using EphemeralCI.SecretsBroker.Audit;
using EphemeralCI.SecretsBroker.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace EphemeralCI.SecretsBroker.Identity;

/// <summary>
/// Mints a job's identity token: an ES256 JWT whose claims a relying party can pin the way it pins
/// GitHub Actions' (sub <c>repo:{repository}:ref:{ref}</c>, repository, ref, sha), expiring at the job's deadline.
/// </summary>
public sealed class JobIdentityIssuer(
    SigningKeyRing ring, IServiceScopeFactory scopes, IOptions<JobTokenOptions> tokenOptions, TimeProvider clock) : IJobTokenIssuer
{
    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = false };

    public async Task<string> IssueAsync(JobTokenRequest request, CancellationToken cancellationToken = default) =>
        (await MintAsync(request, "provisioner", cancellationToken)).Token;

    public async Task<MintedJobToken> MintAsync(JobTokenRequest request, string actor, CancellationToken ct)
    {
        var (kid, key) = await ring.GetSignerAsync(ct);
        var now = clock.GetUtcNow();
        var expires = request.Deadline + tokenOptions.Value.ExpiryMargin;
        var jti = Guid.NewGuid().ToString("N");
        var claims = new Dictionary<string, object>
        {
            [JwtRegisteredClaimNames.Sub] = JobTokenClaims.SubjectOf(request.Repository, request.Ref),
            [JwtRegisteredClaimNames.Jti] = jti,
            [JobTokenClaims.JobIdClaim] = request.JobId.ToString(),
            [JobTokenClaims.RepositoryClaim] = request.Repository,
            [JobTokenClaims.RefClaim] = request.Ref,
        };
        if (!string.IsNullOrEmpty(request.CommitSha)) claims[JobTokenClaims.CommitShaClaim] = request.CommitSha;
        if (!string.IsNullOrEmpty(request.Template)) claims[JobTokenClaims.TemplateClaim] = request.Template;
        if (!string.IsNullOrEmpty(request.Environment)) claims[JobTokenClaims.EnvironmentClaim] = request.Environment;
        // Only a retried job's tokens say their attempt; a first attempt's look as they always did.
        if (request.Attempt > 1) claims[JobTokenClaims.AttemptClaim] = request.Attempt;

        var token = _handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = tokenOptions.Value.Issuer,
            Audience = tokenOptions.Value.Audience,
            IssuedAt = now.UtcDateTime,
            NotBefore = now.UtcDateTime.AddSeconds(-5),
            Expires = expires.UtcDateTime,
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.EcdsaSha256),
            Claims = claims,
        });

        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<SecretsDbContext>();
            db.Audit(clock, actor, AuditActions.TokenIssued, jobId: request.JobId, repository: request.Repository,
                gitRef: request.Ref, tokenId: jti, detail: $"kid={kid}; expires={expires:O}", attempt: request.Attempt);
            await db.SaveChangesAsync(ct);
        }
        return new MintedJobToken(token, kid, expires);
    }
}
