using System.Security.Claims;
using System.Text.Encodings.Web;
using EphemeralCI.JobTokens;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Intake.Auth.Federation;

/// <summary>
/// Authenticates a CI system by its own OIDC token (GitHub Actions, GitLab, …) in <c>Authorization: Bearer</c>,
/// as a trust policy allows: the principal may submit and read jobs of exactly the repository, ref and commit
/// the token's verified claims name.
/// </summary>
public sealed class IdTokenAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    FederatedTokenValidator validator)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Intake.IdToken";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var token = JobTokenAuthenticationHandler.BearerToken(Request.Headers.Authorization.ToString());
        if (token is null) return AuthenticateResult.NoResult();
        var result = await validator.ValidateAsync(token, Context.RequestAborted);
        if (result.Admitted is not { } admitted) return AuthenticateResult.Fail(result.Failure ?? "identity token not accepted");

        var (policy, identity) = (admitted.Policy, admitted.Identity);
        var claims = new List<Claim>
        {
            new(ClaimTypes.NameIdentifier, identity.Subject),
            new(ClaimTypes.Name, $"{policy.Name}:{identity.Subject}"),
            new(ApiKeyAuthenticationHandler.ScopeClaim, ApiKeyScopes.Submit),
            new(ApiKeyAuthenticationHandler.ScopeClaim, ApiKeyScopes.Read),
            // Its repository and ref are the verified ones (no glob characters: the validator checked them).
            new(JobAccess.RepositoryClaim, identity.Repository),
            new(JobAccess.RefClaim, identity.Ref),
            new(JobAccess.VerifiedRepositoryClaim, identity.Repository),
            new(JobAccess.VerifiedRefClaim, identity.Ref),
            new(JobAccess.VerifiedShaClaim, identity.CommitSha),
            new(JobAccess.TrustPolicyClaim, policy.Name),
            new(JobAccess.SubmittedByClaim, $"oidc:{policy.Name}:{identity.Subject}"),
        };
        claims.AddRange(policy.Templates.Select(t => new Claim(JobAccess.TemplateClaim, t)));
        claims.AddRange(policy.Environments.Select(e => new Claim(JobAccess.EnvironmentClaim, e)));
        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
        return AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync();
        Response.Headers.WWWAuthenticate = "Bearer realm=\"ephemeralci\", error=\"invalid_token\"";
        await TypedResults.Problem(
            statusCode: StatusCodes.Status401Unauthorized,
            title: "Identity token not accepted",
            detail: result.Failure?.Message ?? "Send an API key or an identity token a trust policy accepts.").ExecuteAsync(Context);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) => ApiKeyAuthenticationHandler.WriteForbiddenAsync(Context);
}
