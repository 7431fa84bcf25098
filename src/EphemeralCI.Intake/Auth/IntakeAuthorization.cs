using EphemeralCI.Intake.Auth.Federation;
using EphemeralCI.JobTokens;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace EphemeralCI.Intake.Auth;

/// <summary>
/// The intake's authentication schemes and policies, all prefixed "Intake." so that composing
/// this module with others in one process cannot collide with their names. No default scheme is
/// set: every endpoint names its policy, and every policy names its scheme.
/// </summary>
public static class IntakeAuthorization
{
    /// <summary>Runner endpoints: the job token scheme, registered under our own name.</summary>
    public const string JobTokenScheme = "Intake.JobToken";
    public const string RunnerPolicy = "Intake.Runner";

    /// <summary>
    /// The jobs and keys API's scheme: an API key (<c>eci_…</c>) goes to the key scheme, anything else to the
    /// identity-token scheme (trust policies), so one policy serves both and each answers 401/403 its own way.
    /// </summary>
    public const string CallerScheme = "Intake.Caller";

    public static string ScopePolicy(string scope) => $"Intake.Scope.{scope}";

    public static IServiceCollection AddIntakeAuth(this IServiceCollection services)
    {
        services.AddHttpClient(FederatedTokenValidator.HttpClientName);
        services.AddSingleton<FederatedTokenValidator>();
        services.AddAuthentication()
            .AddPolicyScheme(CallerScheme, "API key or identity token", o => o.ForwardDefaultSelector = ctx =>
                JobTokenAuthenticationHandler.BearerToken(ctx.Request.Headers.Authorization.ToString()) is { } bearer
                && !bearer.StartsWith(ApiKeySecret.Marker, StringComparison.Ordinal)
                && bearer.Count(c => c == '.') == 2
                    ? IdTokenAuthenticationHandler.SchemeName
                    : ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null)
            .AddScheme<AuthenticationSchemeOptions, IdTokenAuthenticationHandler>(IdTokenAuthenticationHandler.SchemeName, null)
            .AddScheme<AuthenticationSchemeOptions, JobTokenAuthenticationHandler>(JobTokenScheme, null);

        var policies = services.AddAuthorizationBuilder();
        foreach (var scope in ApiKeyScopes.All)
        {
            policies.AddPolicy(ScopePolicy(scope), p => p
                .AddAuthenticationSchemes(CallerScheme)
                .RequireAuthenticatedUser()
                .RequireAssertion(ctx => !ctx.User.HasClaim(c => c.Type == ApiKeyAuthenticationHandler.UnboundClaim)
                    && ApiKeyScopes.Allows(ctx.User.FindAll(ApiKeyAuthenticationHandler.ScopeClaim).Select(c => c.Value), scope)));
        }
        policies.AddPolicy(RunnerPolicy, p => p
            .AddAuthenticationSchemes(JobTokenScheme)
            .RequireAuthenticatedUser()
            .RequireClaim(JobTokenClaims.JobIdClaim));
        return services;
    }

    /// <summary>Requires an API key holding <paramref name="scope"/> (or admin).</summary>
    public static TBuilder RequireScope<TBuilder>(this TBuilder builder, string scope) where TBuilder : IEndpointConventionBuilder =>
        builder.RequireAuthorization(ScopePolicy(scope)).WithMetadata(new RequiredScope(scope));
}
