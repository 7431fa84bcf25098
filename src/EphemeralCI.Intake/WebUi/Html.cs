using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace EphemeralCI.Intake.WebUi;

/// <summary>
/// The pages' shell and the one way text gets into them (<see cref="E"/>, HTML-encoded). Scripts and
/// styles come only from /ui/, so the Content-Security-Policy forbids every inline script and style.
/// </summary>
internal static class Html
{
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

    /// <summary>HTML-encodes <paramref name="text"/> (null is empty).</summary>
    public static string E(string? text) => WebUtility.HtmlEncode(text ?? "");

    /// <summary>A hidden antiforgery field for a form.</summary>
    public static string AntiforgeryField(string? token) =>
        $"<input type=\"hidden\" name=\"__RequestVerificationToken\" value=\"{E(token)}\">";

    public static IResult Page(string title, string body, string? antiforgeryToken, bool signedIn, int statusCode = StatusCodes.Status200OK, string? script = null,
        bool admin = false)
    {
        var html = new StringBuilder();
        html.Append("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">")
            .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
            .Append("<meta name=\"color-scheme\" content=\"light dark\">")
            .Append("<title>").Append(E(title)).Append(" · EphemeralCI</title>")
            .Append("<link rel=\"stylesheet\" href=\"/ui/app.css\">");
        if (script is not null) html.Append("<script src=\"/ui/").Append(script).Append("\" defer></script>");
        html.Append("</head><body><header class=\"top\"><a class=\"brand\" href=\"/\">EphemeralCI</a>");
        if (signedIn)
        {
            html.Append("<nav><a href=\"/\">Jobs</a> <a href=\"/runners\">Runners</a>").Append(admin ? " <a href=\"/admin/secrets\">Secrets</a> <a href=\"/admin/cache\">Cache</a>" : "").Append("</nav>")
                .Append("<form method=\"post\" action=\"/signout\" class=\"signout\">").Append(AntiforgeryField(antiforgeryToken))
                .Append("<button type=\"submit\">Sign out</button></form>");
        }
        html.Append("</header><main>").Append(body).Append("</main></body></html>");
        return new HtmlResult(html.ToString(), statusCode);
    }

    public static string Duration(TimeSpan? span)
    {
        if (span is not { } d) return "—";
        if (d < TimeSpan.Zero) d = TimeSpan.Zero;
        if (d.TotalSeconds < 1) return $"{(int)d.TotalMilliseconds} ms";
        if (d.TotalMinutes < 1) return d.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s";
        if (d.TotalHours < 1) return $"{(int)d.TotalMinutes} min {d.Seconds} s";
        return $"{(int)d.TotalHours} h {d.Minutes} min";
    }

    /// <summary>A time as UTC text, inside a &lt;time&gt; with the exact value.</summary>
    public static string Time(DateTimeOffset at) =>
        $"<time datetime=\"{at.UtcDateTime:O}\">{at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)}</time>";

    private sealed class HtmlResult(string html, int statusCode) : IResult
    {
        public Task ExecuteAsync(HttpContext context)
        {
            context.Response.StatusCode = statusCode;
            context.Response.ContentType = "text/html; charset=utf-8";
            context.Response.Headers.ContentSecurityPolicy = ContentSecurityPolicy;
            context.Response.Headers.XContentTypeOptions = "nosniff";
            context.Response.Headers["Referrer-Policy"] = "same-origin";
            context.Response.Headers.CacheControl = "no-store";
            return context.Response.WriteAsync(html, context.RequestAborted);
        }
    }
}
