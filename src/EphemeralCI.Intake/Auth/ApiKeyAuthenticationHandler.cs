using System.Security.Claims;
using System.Text.Encodings.Web;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Model;
using EphemeralCI.JobTokens;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Intake.Auth;

/// <summary>
/// Authenticates a CI system by its API key in <c>Authorization: Bearer eci_…</c>. Answers 401 and
/// 403 as problem details, with the WWW-Authenticate header RFC 6750 asks for.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    IntakeDbContext db,
    TimeProvider clock)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Intake.ApiKey";
    public const string ScopeClaim = "eci_scope";
    public const string ApiKeyIdClaim = "eci_api_key_id";
    /// <summary>Set on a non-admin key made before keys were bound to repositories: it is refused everywhere (403 saying why).</summary>
    public const string UnboundClaim = "eci_unbound";
    private static readonly TimeSpan LastUsedResolution = TimeSpan.FromMinutes(1);

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var token = JobTokenAuthenticationHandler.BearerToken(Request.Headers.Authorization.ToString());
        if (token is null) return AuthenticateResult.NoResult();

        var (key, failure) = await FindAsync(db, token, Context.RequestAborted);
        if (key is null) return AuthenticateResult.Fail(failure!);

        var now = clock.GetUtcNow();
        if (key.LastUsedAt is null || now - key.LastUsedAt > LastUsedResolution)
        {
            // Coarse on purpose: one write a minute per key, not one per request.
            await db.ApiKeys.Where(k => k.Id == key.Id).ExecuteUpdateAsync(s => s.SetProperty(k => k.LastUsedAt, now), Context.RequestAborted);
        }

        return AuthenticateResult.Success(new AuthenticationTicket(PrincipalOf(key, SchemeName), SchemeName));
    }

    /// <summary>The key <paramref name="token"/> names, or null and why not (unknown, revoked). The one check of a presented key.</summary>
    internal static async Task<(ApiKey? Key, string? Failure)> FindAsync(IntakeDbContext db, string token, CancellationToken ct)
    {
        if (!ApiKeySecret.IsWellFormed(token)) return (null, "malformed API key");
        var prefix = ApiKeySecret.PrefixOf(token);
        var candidates = await db.ApiKeys.AsNoTracking().Where(k => k.Prefix == prefix).ToListAsync(ct);
        var key = candidates.FirstOrDefault(k => ApiKeySecret.Matches(token, k.Hash));
        if (key is null) return (null, "unknown API key");
        if (key.RevokedAt is not null) return (null, "revoked API key");
        return (key, null);
    }

    /// <summary>What a key may do, as claims: its id, name, scopes and bindings (never the key itself).</summary>
    internal static ClaimsPrincipal PrincipalOf(ApiKey key, string scheme)
    {
        var claims = new List<Claim>
        {
            new(ClaimTypes.NameIdentifier, key.Id.ToString()),
            new(ApiKeyIdClaim, key.Id.ToString()),
            new(ClaimTypes.Name, key.Name),
        };
        claims.AddRange(key.Scopes.Select(s => new Claim(ScopeClaim, s)));
        claims.AddRange(JobAccess.ClaimsOf(key));
        if (!key.Scopes.Contains(ApiKeyScopes.Admin) && key.Repositories.Count == 0) claims.Add(new Claim(UnboundClaim, "true"));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, scheme));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync();
        var presented = result.Failure is not null;
        Response.Headers.WWWAuthenticate = presented
            ? "Bearer realm=\"ephemeralci\", error=\"invalid_token\""
            : "Bearer realm=\"ephemeralci\"";
        await TypedResults.Problem(
            statusCode: StatusCodes.Status401Unauthorized,
            title: "Authentication required",
            detail: presented
                ? "The API key is invalid or has been revoked."
                : "Send an API key as 'Authorization: Bearer eci_…'.").ExecuteAsync(Context);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) => WriteForbiddenAsync(Context);

    /// <summary>The 403 of every credential the jobs API takes: which scope was missing, or that the key predates bindings.</summary>
    internal static Task WriteForbiddenAsync(HttpContext context)
    {
        if (context.User.HasClaim(c => c.Type == UnboundClaim))
        {
            return TypedResults.Problem(
                statusCode: StatusCodes.Status403Forbidden,
                title: "API key not bound to repositories",
                detail: "This API key was created before keys were bound to repositories and may no longer be used. " +
                        "An admin creates a replacement with `eci keys create --name NAME --scope SCOPE --repo OWNER/NAME` " +
                        "(and --ref, --template, --environment as needed) and revokes this one.").ExecuteAsync(context);
        }
        var scope = context.GetEndpoint()?.Metadata.GetMetadata<RequiredScope>()?.Scope;
        return TypedResults.Problem(
            statusCode: StatusCodes.Status403Forbidden,
            title: "Insufficient scope",
            detail: scope is null
                ? "This API key does not have the scope this endpoint requires."
                : $"This API key does not have the '{scope}' scope this endpoint requires.",
            extensions: scope is null ? null : new Dictionary<string, object?> { ["requiredScope"] = scope }).ExecuteAsync(context);
    }
}

/// <summary>Endpoint metadata naming the scope an endpoint requires (used in the 403 answer).</summary>
public sealed record RequiredScope(string Scope);
