using EphemeralCI.Intake.Auth;
using EphemeralCI.Intake.Infrastructure;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace EphemeralCI.Intake.WebUi;

/// <summary>
/// Signing in to the web UI: a person pastes an API key once, it is checked like a bearer key
/// (<see cref="ApiKeyAuthenticationHandler.FindAsync"/>), and what it may do — its id, scopes and
/// repository bindings, never the key — goes into a data-protected (encrypted and signed) cookie:
/// HttpOnly, SameSite=Strict, Secure on HTTPS, valid for <see cref="SessionLifetime"/> and gone when
/// the browser closes. Every request re-reads the key, so a revoked key ends its sessions at once and
/// changed bindings apply at once.
/// </summary>
public static class WebUiAuth
{
    public const string Scheme = "Intake.WebUi";
    public const string Policy = "Intake.WebUi";
    public const string CookieName = "eci_session";
    public static readonly TimeSpan SessionLifetime = TimeSpan.FromHours(8);

    public static IServiceCollection AddWebUiAuth(this IServiceCollection services)
    {
        services.AddAuthentication().AddCookie(Scheme, o =>
        {
            o.Cookie.Name = CookieName;
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            o.ExpireTimeSpan = SessionLifetime;
            o.SlidingExpiration = false;
            o.LoginPath = "/signin";
            o.LogoutPath = "/signout";
            o.AccessDeniedPath = "/signin";
            o.Events.OnValidatePrincipal = RevalidateAsync;
        });
        services.AddAuthorizationBuilder().AddPolicy(Policy, p => p
            .AddAuthenticationSchemes(Scheme)
            .RequireAuthenticatedUser()
            .RequireAssertion(ctx => MayUse(ctx.User)));
        // Cookie name of our own: the module may share a host with others.
        services.AddAntiforgery(o =>
        {
            o.Cookie.Name = "eci_antiforgery";
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.FormFieldName = "__RequestVerificationToken";
        });
        return services;
    }

    /// <summary>The UI reads jobs: a key needs the read scope (or admin) and repository bindings (or admin).</summary>
    public static bool MayUse(System.Security.Claims.ClaimsPrincipal user) =>
        !user.HasClaim(c => c.Type == ApiKeyAuthenticationHandler.UnboundClaim)
        && ApiKeyScopes.Allows(user.FindAll(ApiKeyAuthenticationHandler.ScopeClaim).Select(c => c.Value), ApiKeyScopes.Read);

    /// <summary>A signed-in key that may cancel (submit scope, as the API's cancel asks).</summary>
    public static bool MayCancel(System.Security.Claims.ClaimsPrincipal user) =>
        ApiKeyScopes.Allows(user.FindAll(ApiKeyAuthenticationHandler.ScopeClaim).Select(c => c.Value), ApiKeyScopes.Submit);

    /// <summary>A signed-in key with the admin scope: the only one offered the admin pages.</summary>
    public static bool IsAdmin(System.Security.Claims.ClaimsPrincipal user) =>
        user.FindAll(ApiKeyAuthenticationHandler.ScopeClaim).Any(c => c.Value == ApiKeyScopes.Admin);

    private static async Task RevalidateAsync(CookieValidatePrincipalContext context)
    {
        var id = Guid.TryParse(context.Principal?.FindFirst(ApiKeyAuthenticationHandler.ApiKeyIdClaim)?.Value, out var parsed) ? parsed : (Guid?)null;
        var db = context.HttpContext.RequestServices.GetRequiredService<IntakeDbContext>();
        var key = id is null ? null : await db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.Id == id, context.HttpContext.RequestAborted);
        if (key is null || key.RevokedAt is not null)
        {
            context.RejectPrincipal();
            await context.HttpContext.SignOutAsync(Scheme);
            return;
        }
        // The key's current scopes and bindings, for this request only (the cookie itself is not rewritten).
        context.ReplacePrincipal(ApiKeyAuthenticationHandler.PrincipalOf(key, Scheme));
    }
}
