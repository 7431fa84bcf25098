using EphemeralCI.Contracts.Admin;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Intake.WebUi;

/// <summary>Which admin API a page talks to, and the session item that holds the admin's token for it.</summary>
public enum AdminTarget { Secrets, Cache }

/// <summary>
/// The admin views for the Secrets and Cache pages: in process in the all-in-one server, else over HTTP with the
/// token an admin pasted ("unlock"). That token lives only in the session cookie's properties — the cookie is
/// encrypted and signed by data protection (the key ring in intakedb, so every replica reads it) — and ends with
/// the session: never in the database, configuration or a log.
/// </summary>
internal static class AdminUnlock
{
    /// <summary>What a page can show: a view, a locked form, or "not configured here".</summary>
    public sealed record Resolved<T>(T? View, bool Configured) where T : class;

    private static string Item(AdminTarget target) => target == AdminTarget.Secrets ? "eci.admin.secrets" : "eci.admin.cache";

    public static string? Url(HttpContext http, AdminTarget target)
    {
        var o = http.RequestServices.GetRequiredService<IOptions<WebUiAdminOptions>>().Value;
        var url = target == AdminTarget.Secrets ? o.SecretsBrokerUrl : o.CacheUrl;
        return string.IsNullOrWhiteSpace(url) ? null : url;
    }

    public static async Task<Resolved<ISecretsAdminView>> SecretsAsync(HttpContext http)
    {
        if (http.RequestServices.GetService<ISecretsAdminView>() is { } local) return new(local, true);
        if (Url(http, AdminTarget.Secrets) is not { } url) return new(null, false);
        var token = await TokenAsync(http, AdminTarget.Secrets);
        return new(token is null ? null : Secrets(http, url, token), true);
    }

    public static async Task<Resolved<ICacheAdminView>> CacheAsync(HttpContext http)
    {
        if (http.RequestServices.GetService<ICacheAdminView>() is { } local) return new(local, true);
        if (Url(http, AdminTarget.Cache) is not { } url) return new(null, false);
        var token = await TokenAsync(http, AdminTarget.Cache);
        return new(token is null ? null : Cache(http, url, token), true);
    }

    /// <summary>Checks <paramref name="token"/> against the admin API (a read); kept in the session only when it answers.</summary>
    public static async Task UnlockAsync(HttpContext http, AdminTarget target, string token, CancellationToken ct)
    {
        var url = Url(http, target) ?? throw new InvalidOperationException($"{WebUiAdminOptions.Section} has no URL for {target}");
        if (target == AdminTarget.Secrets) await Secrets(http, url, token).SecretsAsync(ct);
        else await Cache(http, url, token).EntriesAsync(null, 1, ct);
        await StoreAsync(http, target, token);
    }

    public static Task LockAsync(HttpContext http, AdminTarget target) => StoreAsync(http, target, null);

    private static async Task<string?> TokenAsync(HttpContext http, AdminTarget target)
    {
        var result = await http.AuthenticateAsync(WebUiAuth.Scheme);
        return result.Succeeded && result.Properties.Items.TryGetValue(Item(target), out var token) && !string.IsNullOrEmpty(token) ? token : null;
    }

    // Re-issues the same session (same principal, same expiry) with the item set or removed.
    private static async Task StoreAsync(HttpContext http, AdminTarget target, string? token)
    {
        var result = await http.AuthenticateAsync(WebUiAuth.Scheme);
        if (!result.Succeeded) return;
        if (token is null) result.Properties.Items.Remove(Item(target));
        else result.Properties.Items[Item(target)] = token;
        await http.SignInAsync(WebUiAuth.Scheme, result.Principal, result.Properties);
    }

    private static HttpClient Client(HttpContext http) =>
        http.RequestServices.GetRequiredService<IHttpClientFactory>().CreateClient(WebUiAdminOptions.HttpClientName);

    private static HttpSecretsAdminView Secrets(HttpContext http, string url, string token) => new(Client(http), url, token);

    private static HttpCacheAdminView Cache(HttpContext http, string url, string token) => new(Client(http), url, token);
}
