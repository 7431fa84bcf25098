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

    public static string ScopePolicy(string scope) => $"Intake.Scope.{scope}";

    public static IServiceCollection AddIntakeAuth(this IServiceCollection services)
    {
        services.AddAuthentication()
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null)
            .AddScheme<AuthenticationSchemeOptions, JobTokenAuthenticationHandler>(JobTokenScheme, null);

        var policies = services.AddAuthorizationBuilder();
        foreach (var scope in ApiKeyScopes.All)
        {
            policies.AddPolicy(ScopePolicy(scope), p => p
                .AddAuthenticationSchemes(ApiKeyAuthenticationHandler.SchemeName)
                .RequireAuthenticatedUser()
                .RequireAssertion(ctx => ApiKeyScopes.Allows(
                    ctx.User.FindAll(ApiKeyAuthenticationHandler.ScopeClaim).Select(c => c.Value), scope)));
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
