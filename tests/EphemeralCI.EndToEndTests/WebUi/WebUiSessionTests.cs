using System.Net;
using Xunit;

namespace EphemeralCI.EndToEndTests.WebUi;

/// <summary>
/// The web UI's sign-in, session cookie, CSRF protection and per-repository visibility, with a plain HTTP client
/// against the all-in-one server (what a browser would do, and what a forged cross-site form would do).
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class WebUiSessionTests(ServerFixture fx)
{
    [Fact]
    public async Task The_session_cookie_is_http_only_same_site_strict_ends_with_the_browser_and_does_not_carry_the_key()
    {
        var (session, setCookie) = await WebUiSession.SignInAsync(fx.BaseAddress, ServerFixture.AdminKey);
        using var _ = session;
        var attributes = setCookie.ToLowerInvariant();
        Assert.Contains("httponly", attributes);
        Assert.Contains("samesite=strict", attributes);
        Assert.DoesNotContain("expires=", attributes); // a session cookie; the ticket inside expires after 8 hours
        Assert.DoesNotContain(ServerFixture.AdminKey, setCookie);
        Assert.DoesNotContain(ServerFixture.AdminKey["eci_".Length..][..16], setCookie);

        using var jobs = await session.Http.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, jobs.StatusCode);
        Assert.Contains("<h1>Jobs</h1>", await jobs.Content.ReadAsStringAsync());
        Assert.Contains("script-src 'self'", jobs.Headers.GetValues("Content-Security-Policy").Single());
    }

    [Fact]
    public async Task Without_a_session_the_pages_send_the_browser_to_sign_in_and_a_wrong_key_is_refused()
    {
        using var anonymous = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = fx.BaseAddress };
        using var page = await anonymous.GetAsync("/");
        Assert.Equal(HttpStatusCode.Redirect, page.StatusCode);
        Assert.Contains("/signin", page.Headers.Location!.OriginalString);

        var wrong = await Assert.ThrowsAnyAsync<Exception>(() => WebUiSession.SignInAsync(fx.BaseAddress, "eci_" + new string('A', 43)));
        Assert.Contains("401", wrong.Message);
    }

    [Fact]
    public async Task Form_posts_without_the_antiforgery_token_are_refused_and_with_it_a_job_is_cancelled()
    {
        var id = await fx.Intake.SubmitAsync(JobClient.Job("webui cancel", 120, ("wait", "sleep 100")));
        var (session, _) = await WebUiSession.SignInAsync(fx.BaseAddress, ServerFixture.AdminKey);
        using var __ = session;

        // A cross-site form would carry the cookies (were SameSite not strict) but not the token.
        using (var forged = await session.Http.PostAsync($"/jobs/{id}/cancel", new FormUrlEncodedContent([])))
        {
            Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        }
        using var stranger = new HttpClient { BaseAddress = fx.BaseAddress };
        using (var forgedSignIn = await stranger.PostAsync("/signin",
            new FormUrlEncodedContent(new Dictionary<string, string> { ["key"] = ServerFixture.AdminKey })))
        {
            Assert.Equal(HttpStatusCode.BadRequest, forgedSignIn.StatusCode);
        }
        Assert.NotEqual("cancelled", (await fx.Intake.GetJobAsync(id)).GetProperty("status").GetString());

        var token = await session.FormTokenAsync($"/jobs/{id}");
        using var cancel = await session.Http.PostAsync($"/jobs/{id}/cancel",
            new FormUrlEncodedContent(new Dictionary<string, string> { ["__RequestVerificationToken"] = token }));
        Assert.Equal(HttpStatusCode.Redirect, cancel.StatusCode);
        Assert.Equal("cancelled", (await fx.Intake.WaitForTerminalAsync(id)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task A_key_bound_to_one_repository_sees_only_its_jobs_and_gets_404_on_another_repositorys_job()
    {
        var repository = "webui/bound-" + Guid.NewGuid().ToString("N")[..6];
        var hidden = await fx.Intake.SubmitAsync(JobClient.Job("webui hidden", null, ("hi", "echo hidden")));
        var mine = await fx.Intake.SubmitAsync(WebUiSession.OfRepository(JobClient.Job("webui mine", null, ("hi", "echo mine")), repository));
        var (_, key) = await WebUiSession.CreateKeyAsync(fx.Intake, ["read"], [repository]);
        var (session, _) = await WebUiSession.SignInAsync(fx.BaseAddress, key);
        using var _s = session;

        var list = await session.Http.GetStringAsync("/");
        Assert.Contains(mine.ToString(), list);
        Assert.DoesNotContain(hidden.ToString(), list);
        Assert.DoesNotContain("acme/widgets", list);
        Assert.DoesNotContain(hidden.ToString(), await session.Http.GetStringAsync("/?repository=acme%2Fwidgets"));
        // Keyset paging: the page after a cursor of "now" still holds the key's job (and only its jobs).
        var after = await session.Http.GetStringAsync($"/?before={DateTimeOffset.UtcNow.AddMinutes(1).UtcTicks}_{Guid.Empty:N}");
        Assert.Contains(mine.ToString(), after);
        Assert.DoesNotContain(hidden.ToString(), after);

        foreach (var path in new[] { $"/jobs/{hidden}", $"/jobs/{hidden}/log", $"/jobs/{hidden}/log/live" })
        {
            using var response = await session.Http.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{path} answered {(int)response.StatusCode}");
        }
        using var own = await session.Http.GetAsync($"/jobs/{mine}");
        Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        // A read-only key is offered no cancel button.
        Assert.DoesNotContain("/cancel", await own.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task The_secrets_page_shows_admins_names_policies_and_who_got_or_was_refused_which_secret_never_a_value()
    {
        var name = "WEBUI_AUDIT_" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var value = "webui-audit-" + Guid.NewGuid().ToString("N");
        await WebUiSession.PutSecretAsync(fx.SecretsAdmin, name, value, ["refs/heads/main"]);
        object Job(string gitRef) => WebUiSession.With(JobClient.Job("webui audit", null, ("use", "true")), ("ref", gitRef), ("secrets", new[] { name }));
        var granted = await fx.Intake.SubmitAsync(Job("refs/heads/main"));
        var refused = await fx.Intake.SubmitAsync(Job("refs/heads/feature/x"));
        await fx.Intake.WaitForTerminalAsync(granted);
        await fx.Intake.WaitForTerminalAsync(refused);

        var (admin, _) = await WebUiSession.SignInAsync(fx.BaseAddress, ServerFixture.AdminKey);
        using var _a = admin;
        Assert.Contains("href=\"/admin/secrets\"", await admin.Http.GetStringAsync("/"));
        var page = await admin.Http.GetStringAsync("/admin/secrets");
        Assert.Matches($"<tr data-secret=\"{name}\">.*?<td data-label=\"Version\">1</td><td data-label=\"Repositories\">acme/\\*</td><td data-label=\"Refs\">refs/heads/main</td>", page);
        Assert.Matches($"<tr data-action=\"exchange.granted\">(?:(?!</tr>).)*/jobs/{granted}(?:(?!</tr>).)*secrets=\\[{name}\\]", page);
        Assert.Matches($"<tr data-action=\"exchange.denied\" class=\"refused\">(?:(?!</tr>).)*{name}(?:(?!</tr>).)*/jobs/{refused}(?:(?!</tr>).)*ref-not-allowed", page);
        Assert.DoesNotContain(value, page);

        // Anyone but an admin: no link, and the page does not exist.
        var (_, key) = await WebUiSession.CreateKeyAsync(fx.Intake, ["read", "submit"], ["acme/*"]);
        var (reader, _) = await WebUiSession.SignInAsync(fx.BaseAddress, key);
        using var _r = reader;
        Assert.DoesNotContain("/admin/secrets", await reader.Http.GetStringAsync("/"));
        using var hidden = await reader.Http.GetAsync("/admin/secrets");
        Assert.Equal(HttpStatusCode.NotFound, hidden.StatusCode);
        Assert.DoesNotContain(name, await hidden.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task The_cache_page_shows_admins_usage_and_entries_and_deletes_one_only_with_the_forms_token()
    {
        var key = "webui-cache-" + Guid.NewGuid().ToString("N")[..8];
        var id = await fx.Intake.SubmitAsync(WebUiSession.With(JobClient.Job("webui cache", null, ("fill", "mkdir -p deps && echo cached > deps/a")),
            ("caches", new[] { new { key, paths = new[] { "deps" } } })));
        Assert.Equal("succeeded", (await fx.Intake.WaitForTerminalAsync(id)).GetProperty("status").GetString());

        var (admin, _) = await WebUiSession.SignInAsync(fx.BaseAddress, ServerFixture.AdminKey);
        using var _a = admin;
        var page = await admin.Http.GetStringAsync("/admin/cache?repository=acme%2Fwidgets");
        Assert.Matches("<tr><td data-label=\"Repository\"><a [^>]*>acme/widgets</a></td><td data-label=\"Scope\">refs/heads/main</td><td data-label=\"Entries\">[1-9]", page);
        var entry = System.Text.RegularExpressions.Regex.Match(page, $"<tr data-entry=\"(\\d+)\"><td data-label=\"Key\"><code>{key}</code>(?:(?!</tr>).)*Committed");
        Assert.True(entry.Success, page);
        var path = $"/admin/cache/entries/{entry.Groups[1].Value}/delete";

        // Without the form's token (a cross-site form): refused, the entry stays.
        using (var forged = await admin.Http.PostAsync(path, new FormUrlEncodedContent([]))) Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        Assert.Contains(key, await admin.Http.GetStringAsync("/admin/cache"));
        // Another key, even with a valid token of its own: the page does not exist for it.
        var (_, readKey) = await WebUiSession.CreateKeyAsync(fx.Intake, ["read", "submit"], ["acme/*"]);
        var (reader, _) = await WebUiSession.SignInAsync(fx.BaseAddress, readKey);
        using (reader)
        {
            using (var page404 = await reader.Http.GetAsync("/admin/cache")) Assert.Equal(HttpStatusCode.NotFound, page404.StatusCode);
            var readerToken = await reader.FormTokenAsync("/");
            using var denied = await reader.Http.PostAsync(path, new FormUrlEncodedContent(new Dictionary<string, string> { ["__RequestVerificationToken"] = readerToken }));
            Assert.Equal(HttpStatusCode.NotFound, denied.StatusCode);
        }
        Assert.Contains(key, await admin.Http.GetStringAsync("/admin/cache"));

        var token = await admin.FormTokenAsync("/admin/cache");
        using (var delete = await admin.Http.PostAsync(path, new FormUrlEncodedContent(new Dictionary<string, string> { ["__RequestVerificationToken"] = token })))
        {
            Assert.Equal(HttpStatusCode.Redirect, delete.StatusCode);
        }
        Assert.DoesNotContain(key, await admin.Http.GetStringAsync("/admin/cache"));
    }

    [Fact]
    public async Task Signing_out_or_revoking_the_key_ends_the_session()
    {
        var (id, key) = await WebUiSession.CreateKeyAsync(fx.Intake, ["read"], ["acme/*"]);
        var (first, _) = await WebUiSession.SignInAsync(fx.BaseAddress, key);
        using (first)
        {
            var token = await first.FormTokenAsync("/");
            using var signOut = await first.Http.PostAsync("/signout",
                new FormUrlEncodedContent(new Dictionary<string, string> { ["__RequestVerificationToken"] = token }));
            Assert.Equal(HttpStatusCode.Redirect, signOut.StatusCode);
            using var after = await first.Http.GetAsync("/");
            Assert.Equal(HttpStatusCode.Redirect, after.StatusCode);
        }

        var (second, _) = await WebUiSession.SignInAsync(fx.BaseAddress, key);
        using (second)
        {
            using (var before = await second.Http.GetAsync("/")) Assert.Equal(HttpStatusCode.OK, before.StatusCode);
            using (var revoke = await fx.Intake.DeleteAsync($"/api/v1/api-keys/{id}")) Assert.True(revoke.IsSuccessStatusCode);
            using var after = await second.Http.GetAsync("/");
            Assert.Equal(HttpStatusCode.Redirect, after.StatusCode);
            Assert.Contains("/signin", after.Headers.Location!.OriginalString);
        }
    }
}
