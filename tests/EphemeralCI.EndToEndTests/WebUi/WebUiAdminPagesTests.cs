using System.Net;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using Xunit;

namespace EphemeralCI.EndToEndTests.WebUi;

/// <summary>
/// The Secrets and Cache pages where the broker and the cache run apart from the intake (the AppHost), in a real
/// browser. The intake holds neither admin token: an admin unlocks each page by pasting it, and it must then live
/// only in the encrypted session cookie — not in a cookie in plain text, not in any service's log.
/// </summary>
[Collection(AppHostCollection.Name)]
public sealed class WebUiAdminPagesTests(AppHostFixture fx, WebUiBrowser browser) : IClassFixture<WebUiBrowser>
{
    private ChromeDriver _driver => browser.Driver;

    [Fact]
    public async Task An_admin_unlocks_the_secrets_and_cache_pages_with_the_services_tokens_and_sees_names_never_values()
    {
        // A secret and a job that receives it and saves a cache: an audit line and a cache entry to show.
        var name = "WEBUI_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var value = "value-" + Guid.NewGuid().ToString("N");
        var key = "webui-admin-" + Guid.NewGuid().ToString("N")[..8];
        await WebUiSession.PutSecretAsync(fx.SecretsAdmin, name, value, ["refs/heads/main"]);
        var job = WebUiSession.With(JobClient.Job("webui admin", 120, ("save", $"test -n \"${name}\" && mkdir -p deps && echo x > deps/a")),
            ("secrets", new[] { name }), ("caches", new[] { new { key, paths = new[] { "deps" } } }));
        var id = await fx.Intake.SubmitAsync(job);
        var done = await fx.Intake.WaitForTerminalAsync(id);
        Assert.True(done.GetProperty("status").GetString() == "succeeded", $"the job: {done}\n{await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/logs")}");

        await SignInAsync(AppHostFixture.AdminKey);

        // Secrets: locked until the broker's token is pasted; a wrong one is refused on the form.
        Go("/admin/secrets");
        Assert.NotNull(_driver.FindElement(By.CssSelector("form[action='/admin/secrets/unlock'] input#token")));
        Unlock("secrets", "not-the-token");
        await WaitForAsync(() => Text(".error").Contains("refused", StringComparison.Ordinal), "the refusal on the unlock form");
        Unlock("secrets", AppHostFixture.SecretsAdminToken);
        await WaitForAsync(() => _driver.FindElements(By.CssSelector($"tr[data-secret='{name}']")).Count == 1, "the secret in the list");
        Assert.Equal("1", _driver.FindElement(By.CssSelector($"tr[data-secret='{name}'] td[data-label='Version']")).Text);
        Assert.Contains(_driver.FindElements(By.CssSelector("table.audit tr[data-action='exchange.granted']")),
            row => row.Text.Contains(name, StringComparison.Ordinal) && row.Text.Contains(id.ToString()[..8], StringComparison.Ordinal));
        Assert.DoesNotContain(value, _driver.PageSource, StringComparison.Ordinal);

        // Cache: its own token; the job's entry is listed and the delete goes through to the cache.
        Go("/admin/cache");
        Unlock("cache", AppHostFixture.SecretsAdminToken); // the broker's token is not the cache's
        await WaitForAsync(() => Text(".error").Contains("refused", StringComparison.Ordinal), "the cache's refusal");
        Unlock("cache", AppHostFixture.CacheAdminToken);
        var entry = By.XPath($"//table[@class='entries']//tr[td[@data-label='Key']/code[text()='{key}']]");
        await WaitForAsync(() => _driver.FindElements(entry).Count == 1, "the job's cache entry");
        Assert.Contains(_driver.FindElements(By.CssSelector("table.usage tr")), row => row.Text.Contains("refs/heads/main", StringComparison.Ordinal));
        _driver.FindElement(entry).FindElement(By.CssSelector("button.danger")).Click();
        await WaitForAsync(() => _driver.Url.EndsWith("/admin/cache", StringComparison.Ordinal) && _driver.FindElements(entry).Count == 0, "the entry gone");

        // The tokens are nowhere a browser or an operator could read them.
        foreach (var cookie in _driver.Manage().Cookies.AllCookies)
        {
            foreach (var token in new[] { AppHostFixture.SecretsAdminToken, AppHostFixture.CacheAdminToken })
            {
                Assert.DoesNotContain(token, cookie.Value, StringComparison.Ordinal);
                Assert.DoesNotContain(Uri.EscapeDataString(token), cookie.Value, StringComparison.Ordinal);
            }
        }
        foreach (var service in new[] { "intake", "secrets-broker", "cache" })
        {
            var lines = await ResourceLogs.AllLinesAsync(fx.App, service);
            Assert.NotEmpty(lines);
            Assert.DoesNotContain(lines, l => l.Contains(AppHostFixture.SecretsAdminToken, StringComparison.Ordinal) || l.Contains(AppHostFixture.CacheAdminToken, StringComparison.Ordinal));
        }

        // Lock forgets the token: the page asks again.
        _driver.FindElement(By.CssSelector("form[action='/admin/cache/lock'] button")).Click();
        await WaitForAsync(() => _driver.FindElements(By.CssSelector("form[action='/admin/cache/unlock']")).Count == 1, "the unlock form after lock");
    }

    [Fact]
    public async Task A_non_admin_key_gets_no_admin_page_and_an_unlock_without_its_form_token_or_with_a_broken_token_is_refused()
    {
        var (_, readKey) = await WebUiSession.CreateKeyAsync(fx.Intake, ["read"], ["acme/*"]);
        var (reader, _) = await WebUiSession.SignInAsync(fx.Intake.BaseAddress!, readKey);
        using (reader)
        {
            foreach (var page in new[] { "/admin/secrets", "/admin/cache" })
            {
                using var response = await reader.Http.GetAsync(page);
                Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            }
            var token = await reader.FormTokenAsync("/");
            using var unlock = await reader.Http.PostAsync("/admin/secrets/unlock", new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["__RequestVerificationToken"] = token,
                ["token"] = AppHostFixture.SecretsAdminToken,
            }));
            Assert.Equal(HttpStatusCode.NotFound, unlock.StatusCode);
        }

        var (admin, _) = await WebUiSession.SignInAsync(fx.Intake.BaseAddress!, AppHostFixture.AdminKey);
        using (admin)
        {
            using var forged = await admin.Http.PostAsync("/admin/secrets/unlock", new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["token"] = AppHostFixture.SecretsAdminToken,
            }));
            Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
            // A token that could not go into a header is a form error, not a failed request.
            using var broken = await admin.Http.PostAsync("/admin/secrets/unlock", new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["__RequestVerificationToken"] = await admin.FormTokenAsync("/admin/secrets"),
                ["token"] = "abc\r\nX-Injected: 1",
            }));
            Assert.Equal(HttpStatusCode.BadRequest, broken.StatusCode);
            Assert.Contains("That is not an admin token", await broken.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            using var page = await admin.Http.GetAsync("/admin/secrets");
            Assert.Contains("/admin/secrets/unlock", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal); // still locked
        }
    }

    private void Go(string path) => _driver.Navigate().GoToUrl(new Uri(fx.Intake.BaseAddress!, path).ToString());

    private string Text(string css) => _driver.FindElements(By.CssSelector(css)) is [var e, ..] ? e.Text : "";

    private void Unlock(string target, string token)
    {
        var input = _driver.FindElement(By.CssSelector($"form[action='/admin/{target}/unlock'] input#token"));
        input.Clear();
        input.SendKeys(token);
        _driver.FindElement(By.CssSelector($"form[action='/admin/{target}/unlock'] button")).Click();
    }

    private async Task SignInAsync(string apiKey)
    {
        Go("/signin");
        _driver.Manage().Cookies.DeleteAllCookies();
        await _driver.SignInAsync(fx.Intake.BaseAddress!, apiKey);
    }

    private Task WaitForAsync(Func<bool> probe, string what) => _driver.WaitForAsync(probe, TimeSpan.FromSeconds(20), what);
}
