using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.JobTokens;

/// <summary>Authenticates a runner by the job token in <c>Authorization: Bearer</c>.</summary>
public sealed class JobTokenAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    JobTokenService tokens,
    IJobRevocationList revocations)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "JobToken";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var token = BearerToken(Request.Headers.Authorization.ToString());
        if (token is null) return AuthenticateResult.NoResult();
        var claims = await tokens.ValidateAsync(token, Context.RequestAborted);
        if (claims is null) return AuthenticateResult.Fail("The job token is invalid, expired or was not issued by EphemeralCI.");
        // A token dies with its job, not at its expiry.
        if (await revocations.IsRevokedAsync(claims.JobId, claims.Attempt, Context.RequestAborted)) return AuthenticateResult.Fail(JobTokenGate.RevokedDetail);
        return AuthenticateResult.Success(new AuthenticationTicket(JobTokenService.ToPrincipal(claims, SchemeName), SchemeName));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync();
        Response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\"";
        await TypedResults.Problem(
            result.Failure?.Message ?? "A job token is required: send it as 'Authorization: Bearer <token>'.",
            statusCode: StatusCodes.Status401Unauthorized,
            title: result.Failure?.Message == JobTokenGate.RevokedDetail ? JobTokenGate.RevokedTitle : "Unauthorized").ExecuteAsync(Context);
    }

    public static string? BearerToken(string header) =>
        header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && header.Length > 7 ? header[7..].Trim() : null;
}

public static class JobTokenExtensions
{
    /// <summary>
    /// Registers <see cref="JobTokenService"/> bound to the <c>JobTokens</c> section, and an
    /// <see cref="IJobTokenIssuer"/>. With <c>JobTokens:Authority</c> (the broker's URL) tokens are validated
    /// against the broker's JWKS, and with <c>JobTokens:ProvisionerToken</c> as well they are minted by
    /// the broker; otherwise the shared HS256 key does both. Registrations a host (or the broker module
    /// itself) made earlier win, so the all-in-one server validates against the in-process key ring.
    /// </summary>
    public static IHostApplicationBuilder AddJobTokens(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<JobTokenOptions>().BindConfiguration(JobTokenOptions.Section);
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddSingleton<JobTokenService>();

        var authority = builder.Configuration[$"{JobTokenOptions.Section}:Authority"];
        var provisionerToken = builder.Configuration[$"{JobTokenOptions.Section}:ProvisionerToken"];
        if (!string.IsNullOrWhiteSpace(authority))
        {
            if (!builder.Services.Any(d => d.ServiceType == typeof(IJobTokenKeySource)))
            {
                // Before anything in the process reads IdentityModel's switches (see JwksKeySource).
                JwksKeySource.UseBlockingRefresh();
                builder.Services.AddHttpClient(JwksKeySource.HttpClientName);
                builder.Services.AddSingleton<IJobTokenKeySource>(sp => new JwksKeySource(
                    sp.GetRequiredService<IHttpClientFactory>().CreateClient(JwksKeySource.HttpClientName),
                    sp.GetRequiredService<IOptions<JobTokenOptions>>()));
            }
            if (!string.IsNullOrWhiteSpace(provisionerToken))
            {
                builder.Services.AddHttpClient<IJobTokenIssuer, BrokerJobTokenIssuer>(BrokerJobTokenIssuer.HttpClientName);
            }
        }
        builder.Services.TryAddSingleton<IJobTokenIssuer, SharedKeyJobTokenIssuer>();
        builder.AddJobRevocationList();
        return builder;
    }

    public static AuthenticationBuilder AddJobTokenScheme(this AuthenticationBuilder auth) =>
        auth.AddScheme<AuthenticationSchemeOptions, JobTokenAuthenticationHandler>(JobTokenAuthenticationHandler.SchemeName, null);

    public static Guid? JobId(this ClaimsPrincipal user) =>
        Guid.TryParse(user.FindFirst(JobTokenClaims.JobIdClaim)?.Value, out var id) ? id : null;

    /// <summary>The attempt of the job the token is for (1 unless the job was retried after a lost runner).</summary>
    public static int JobAttempt(this ClaimsPrincipal user) => JobTokenClaims.ParseAttempt(user.FindFirst(JobTokenClaims.AttemptClaim)?.Value);
}
