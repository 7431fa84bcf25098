using Microsoft.AspNetCore.Http;

namespace EphemeralCI.JobTokens;

/// <summary>
/// Lets a request through only with a valid job token in <c>Authorization: Bearer</c>, and answers
/// 401 problem details otherwise (the JobToken scheme's own challenge has no body). It validates with
/// the same <see cref="JobTokenService"/> the JobToken scheme uses, sets the same principal, and keeps
/// the full <see cref="JobTokenClaims"/> (repository, token id, expiry) as a request feature, which
/// the cache's scoping and the broker's replay guard need and the scheme's principal does not carry.
/// A token whose job has ended (<see cref="IJobRevocationList"/>) is refused even before it expires.
/// </summary>
public sealed class JobTokenGate(JobTokenService tokens, IJobRevocationList revocations) : IEndpointFilter
{
    public const string RevokedTitle = "token revoked";
    public const string RevokedDetail = "This job has ended; its token was revoked.";

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var bearer = JobTokenAuthenticationHandler.BearerToken(http.Request.Headers.Authorization.ToString());
        if (bearer is null)
        {
            return Unauthorized(http, "A job token is required: send it as 'Authorization: Bearer <token>'.");
        }
        var claims = await tokens.ValidateAsync(bearer);
        if (claims is null)
        {
            return Unauthorized(http, "The job token is invalid, expired or was not issued by EphemeralCI.");
        }
        // A token dies with its job, not at its expiry: after RunnerFinished it buys nothing here.
        if (await revocations.IsRevokedAsync(claims.JobId, claims.Attempt, http.RequestAborted))
        {
            if (http.RequestServices.GetService(typeof(IRevokedJobTokenAudit)) is IRevokedJobTokenAudit audit)
            {
                await audit.RecordAsync(claims, http.RequestAborted);
            }
            http.Response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\"";
            return TypedResults.Problem(RevokedDetail, statusCode: StatusCodes.Status401Unauthorized, title: RevokedTitle);
        }
        http.User = JobTokenService.ToPrincipal(claims, JobTokenAuthenticationHandler.SchemeName);
        http.Features.Set(claims);
        return await next(context);
    }

    private static IResult Unauthorized(HttpContext http, string detail)
    {
        // RFC 6750: tell the client which scheme to use.
        http.Response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\"";
        return TypedResults.Problem(detail, statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized");
    }
}

public static class JobTokenGateExtensions
{
    /// <summary>The claims <see cref="JobTokenGate"/> checked for this request.</summary>
    public static JobTokenClaims JobToken(this HttpContext http) =>
        http.Features.Get<JobTokenClaims>() ?? throw new InvalidOperationException("The endpoint is not behind JobTokenGate.");
}
