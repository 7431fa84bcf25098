using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;

namespace EphemeralCI.EndToEndTests.WebUi;

/// <summary>The web UI as a plain HTTP client sees it: a cookie jar, no redirects followed, forms posted by hand.</summary>
public sealed partial class WebUiSession : IDisposable
{
    private WebUiSession(Uri baseAddress)
    {
        Handler = new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false };
        Http = new HttpClient(Handler) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public HttpClientHandler Handler { get; }
    public HttpClient Http { get; }

    /// <summary>Signs in with <paramref name="apiKey"/> through the sign-in form; returns the session and the Set-Cookie of the session cookie.</summary>
    public static async Task<(WebUiSession Session, string SetCookie)> SignInAsync(Uri baseAddress, string apiKey)
    {
        var session = new WebUiSession(baseAddress);
        var token = await session.FormTokenAsync("/signin");
        using var response = await session.Http.PostAsync("/signin", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = token,
            ["key"] = apiKey,
            ["returnUrl"] = "/",
        }));
        Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"signing in answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        var setCookie = response.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("eci_session=", StringComparison.Ordinal));
        return (session, setCookie);
    }

    /// <summary>The antiforgery token in the first form of <paramref name="path"/> (its cookie lands in the jar).</summary>
    public async Task<string> FormTokenAsync(string path)
    {
        var html = await Http.GetStringAsync(path);
        return TokenField().Match(html) is { Success: true } m ? WebUtility.HtmlDecode(m.Groups[1].Value) : throw new Xunit.Sdk.XunitException($"no antiforgery field on {path}:\n{html}");
    }

    /// <summary>An API key made by the admin, bound to <paramref name="repositories"/>.</summary>
    public static async Task<(Guid Id, string Key)> CreateKeyAsync(HttpClient admin, string[] scopes, string[] repositories)
    {
        using var created = await admin.PostAsJsonAsync("/api/v1/api-keys", new
        {
            name = "webui-" + Guid.NewGuid().ToString("N")[..6],
            scopes,
            repositories,
            refs = new[] { "refs/heads/**" },
        });
        var body = await created.Content.ReadAsStringAsync();
        Assert.True(created.IsSuccessStatusCode, $"creating a key answered {(int)created.StatusCode}: {body}");
        var root = JsonDocument.Parse(body).RootElement;
        return (root.GetProperty("id").GetGuid(), root.GetProperty("key").GetString()!);
    }

    /// <summary>A job body (as <see cref="JobClient.Job"/> makes it) for another repository.</summary>
    public static object OfRepository(object job, string repository) => With(job, ("repository", repository));

    /// <summary>A job body (as <see cref="JobClient.Job"/> makes it) with some fields set or replaced.</summary>
    public static object With(object job, params (string Field, object Value)[] fields)
    {
        var body = JsonSerializer.SerializeToNode(job, JsonSerializerOptions.Web)!.AsObject();
        foreach (var (field, value) in fields) body[field] = JsonSerializer.SerializeToNode(value, JsonSerializerOptions.Web);
        return body;
    }

    /// <summary>Creates (or replaces) a secret through the broker's admin API.</summary>
    public static async Task PutSecretAsync(HttpClient secretsAdmin, string name, string value, string[] refs)
    {
        using var put = await secretsAdmin.PutAsJsonAsync($"/api/v1/admin/secrets/{name}", new { value, repositories = new[] { "acme/*" }, refs });
        Assert.True(put.IsSuccessStatusCode, $"put secret answered {(int)put.StatusCode}: {await put.Content.ReadAsStringAsync()}");
    }

    public void Dispose()
    {
        Http.Dispose();
        Handler.Dispose();
    }

    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex TokenField();
}
