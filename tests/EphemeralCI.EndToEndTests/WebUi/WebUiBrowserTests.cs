using System.Drawing;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using Xunit;
using Xunit.Abstractions;

namespace EphemeralCI.EndToEndTests.WebUi;

/// <summary>One headless Chromium for the whole class (starting one costs seconds).</summary>
public sealed class WebUiBrowser : IDisposable
{
    public ChromeDriver Driver { get; } = HeadlessChromium.Start("1280,900");

    public void Dispose()
    {
        Driver.Quit();
        Driver.Dispose();
    }
}

/// <summary>
/// The web UI in a real browser (Debian's Chromium through Selenium) against the all-in-one server: sign in,
/// jobs appearing, the live log, a failed step, hostile log output. Screenshots go to <c>ECI_SCREENSHOTS</c>
/// (docs/images when refreshed by hand), else the test's output folder.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class WebUiBrowserTests(ServerFixture fx, WebUiBrowser browser, ITestOutputHelper output) : IClassFixture<WebUiBrowser>
{
    private ChromeDriver Driver => browser.Driver;

    [Fact]
    public async Task Signing_in_shows_a_submitted_job_in_the_list_and_it_opens()
    {
        Driver.Navigate().GoToUrl(Url("/signin"));
        Driver.Manage().Cookies.DeleteAllCookies();
        Driver.Navigate().GoToUrl(Url("/"));
        Assert.Contains("/signin", Driver.Url);
        await SignIn();
        Assert.Equal("Jobs", Driver.FindElement(By.TagName("h1")).Text);

        var name = "webui list " + Guid.NewGuid().ToString("N")[..6];
        var id = await fx.Intake.SubmitAsync(JobClient.Job(name, null, ("hello", "echo hello from the list")));
        await WaitForAsync(() =>
        {
            Driver.Navigate().Refresh();
            return Driver.FindElements(By.CssSelector($"tr[data-job='{id}'] a")).Count == 1;
        }, TimeSpan.FromSeconds(30), "the job in the list");

        Driver.FindElement(By.CssSelector($"tr[data-job='{id}'] a")).Click();
        await WaitForAsync(() => Driver.Url.EndsWith($"/jobs/{id}", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "the job page");
        Assert.Equal(name, Driver.FindElement(By.TagName("h1")).Text);
        Assert.Contains("acme/widgets", Driver.FindElement(By.CssSelector(".facts")).Text);
        await WaitForAsync(() => Text("#log").Contains("hello from the list", StringComparison.Ordinal), TimeSpan.FromSeconds(60), "the job's log");
    }

    [Fact]
    public async Task Log_lines_arrive_while_the_job_runs()
    {
        await SignIn();
        var id = await fx.Intake.SubmitAsync(JobClient.Job("webui live", 120, ("count", "for i in $(seq 1 10); do echo \"tick $i\"; sleep 1; done")));
        Driver.Navigate().GoToUrl(Url($"/jobs/{id}"));
        Assert.NotNull(Driver.FindElement(By.CssSelector("#log[data-live]")));

        await WaitForAsync(() => Text("#log").Contains("tick 2", StringComparison.Ordinal), TimeSpan.FromSeconds(60), "the first lines of the live log");
        // Seen while the job still runs, with no reload: the page is the same one (its live log element is still there).
        Assert.Equal("running", (await fx.Intake.GetJobAsync(id)).GetProperty("status").GetString());
        Assert.DoesNotContain("tick 10", Text("#log"));
        await WaitForAsync(() => Text("#log").Contains("tick 5", StringComparison.Ordinal), TimeSpan.FromSeconds(30), "more lines as they are written");

        // At the end the page shows the final state.
        await WaitForAsync(() => Driver.FindElements(By.CssSelector(".job-head .status-succeeded")).Count == 1, TimeSpan.FromSeconds(60), "the succeeded badge");
        Assert.Contains("tick 10", Text("#log"));
    }

    [Fact]
    public async Task A_failed_step_is_highlighted_and_colours_are_rendered()
    {
        await SignIn();
        var id = await fx.Intake.SubmitAsync(JobClient.Job("webui failing build", null,
            ("build", "printf '\\033[1;32m✓ compiled\\033[0m 12 files\\n'"),
            ("test", "printf '\\033[31mFAIL\\033[0m widgets_spin: expected 3, got 4\\n'; exit 3"),
            ("package", "echo never runs")));
        await fx.Intake.WaitForTerminalAsync(id, TimeSpan.FromMinutes(2));
        Driver.Navigate().GoToUrl(Url($"/jobs/{id}"));

        var failed = Driver.FindElements(By.CssSelector("li.step.failed"));
        Assert.Single(failed);
        Assert.Contains("test", failed[0].Text);
        Assert.Contains("exit code 3", failed[0].Text);
        Assert.Single(Driver.FindElements(By.CssSelector("li.step.passed")));
        Assert.Contains("pending", Driver.FindElement(By.CssSelector("li.step[data-step='2']")).Text);
        Assert.Equal("FAIL", Driver.FindElement(By.CssSelector("#log span.ansi-fg1")).Text);
        Assert.NotEqual(Driver.FindElement(By.CssSelector("#log span.ansi-fg1")).GetCssValue("color"), Driver.FindElement(By.CssSelector("#log")).GetCssValue("color"));
        Screenshot("webui-job.png");

        Driver.Navigate().GoToUrl(Url("/"));
        Screenshot("webui-jobs.png");
    }

    [Fact]
    public async Task A_log_with_hostile_escape_sequences_and_html_renders_as_text_live_and_afterwards()
    {
        await SignIn();
        const string hostile =
            "printf '<script>document.title=\"pwned\"</script>\\n<img src=x onerror=document.title=1>\\n" +
            "\\033]8;;javascript:alert(1)\\033\\\\hostile-link\\033]8;;\\033\\\\\\n\\033]0;evil title\\007\\033[2J\\033[H\\033[31mred-after-clear\\033[0m\\n'; sleep 3";
        var id = await fx.Intake.SubmitAsync(JobClient.Job("webui hostile", 60, ("hostile", hostile)));
        Driver.Navigate().GoToUrl(Url($"/jobs/{id}"));

        await WaitForAsync(() => Text("#log").Contains("red-after-clear", StringComparison.Ordinal), TimeSpan.FromSeconds(60), "the hostile lines in the live log");
        AssertRenderedAsText();
        await WaitForAsync(() => Driver.FindElements(By.CssSelector(".job-head .status-succeeded")).Count == 1, TimeSpan.FromSeconds(60), "the finished page");
        AssertRenderedAsText();

        void AssertRenderedAsText()
        {
            var log = Text("#log");
            Assert.Contains("<script>document.title=\"pwned\"</script>", log);
            Assert.Contains("<img src=x onerror=document.title=1>", log);
            Assert.Contains("hostile-link", log);
            Assert.DoesNotContain("evil title", log);
            Assert.Empty(Driver.FindElements(By.CssSelector("#log script, #log img, #log a, #log iframe")));
            Assert.Equal("red-after-clear", Driver.FindElement(By.CssSelector("#log span.ansi-fg1")).Text);
            Assert.DoesNotContain("pwned", Driver.Title);
            Assert.NotEqual("1", Driver.Title);
        }
    }

    [Fact]
    public async Task The_job_page_jumps_to_steps_finds_in_the_log_and_shows_caches_secret_names_and_the_verified_attestation()
    {
        var secretName = "WEBUI_TOKEN_" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var value = "webui-s3cr3t-" + Guid.NewGuid().ToString("N");
        await WebUiSession.PutSecretAsync(fx.SecretsAdmin, secretName, value, ["refs/heads/**"]);
        var key = "webui-deps-" + Guid.NewGuid().ToString("N")[..8];
        var id = await fx.Intake.SubmitAsync(new
        {
            name = "webui details",
            repository = "acme/widgets",
            @ref = "refs/heads/main",
            commitSha = "0123456789abcdef0123456789abcdef01234567",
            runnerTemplate = "default",
            secrets = new[] { secretName },
            caches = new[] { new { key, paths = new[] { "deps" } } },
            steps = new[]
            {
                new { name = "long output", run = "mkdir -p deps && echo cached > deps/a && for i in $(seq 1 300); do echo line $i; done" },
                new { name = "search me", run = $"echo ${{{secretName}:+has the secret}}; echo haystack needle one; echo needle two; echo NEEDLE three" },
            },
        });
        await fx.WaitForVerifiedRunnerEndAsync(id);
        await SignIn();
        Driver.Navigate().GoToUrl(Url($"/jobs/{id}"));

        // The attestation, checked by the server against the broker's keys, and what the job received: names, no values.
        Assert.Contains("verified", Text(".verified"));
        Assert.Contains(secretName, Text("table.secrets"));
        Assert.DoesNotContain(value, Driver.PageSource);
        Assert.Contains("miss", Text("table.caches tr[data-cache='restore']"));
        Assert.Contains(key, Text("table.caches tr[data-cache='restore']"));
        Assert.Contains("saved", Text("table.caches tr[data-cache='save']"));
        Assert.NotEqual("0 B", Driver.FindElement(By.CssSelector("table.caches tr[data-cache='save'] td[data-label='Size']")).Text);

        // Jump to a step: the link scrolls the log to the agent's header of that step.
        var log = Driver.FindElement(By.Id("log"));
        Assert.Equal(0L, (long)((IJavaScriptExecutor)Driver).ExecuteScript("return arguments[0].scrollTop;", log)!);
        Driver.FindElement(By.CssSelector("li.step[data-step='1'] a")).Click();
        Assert.EndsWith("#step-2", Driver.Url);
        await WaitForAsync(() => (long)((IJavaScriptExecutor)Driver).ExecuteScript("return arguments[0].scrollTop;", log)! > 0, TimeSpan.FromSeconds(5), "the log scrolled to step 2");
        Assert.True((bool)((IJavaScriptExecutor)Driver).ExecuteScript(
            "const m = document.getElementById('step-2').getBoundingClientRect(), l = arguments[0].getBoundingClientRect(); return m.top >= l.top && m.top <= l.bottom;", log)!,
            "step 2's header is in view");

        // Find in page: case-insensitive marks, Enter moves to the next.
        Driver.FindElement(By.Id("find")).SendKeys("needle");
        await WaitForAsync(() => Driver.FindElements(By.CssSelector("#log mark.find-hit")).Count == 3, TimeSpan.FromSeconds(5), "three marked matches");
        Assert.Equal("1 of 3", Text("#find-count"));
        Driver.FindElement(By.Id("find")).SendKeys(Keys.Enter);
        Assert.Equal("2 of 3", Text("#find-count"));
        Assert.Equal("needle", Driver.FindElement(By.CssSelector("#log mark.find-hit.current")).Text);
        Assert.EndsWith($"/jobs/{id}#step-2", Driver.Url); // Enter did not submit anything
        Assert.Equal($"/jobs/{id}/log", Driver.FindElement(By.CssSelector("a[download]")).GetAttribute("pathname"));
    }

    [Fact]
    public async Task Paging_through_500_jobs_shows_each_once_newest_first_and_the_filters_narrow_them()
    {
        var repository = "webui/paging-" + Guid.NewGuid().ToString("N")[..6];
        var first = await fx.Intake.SubmitAsync(WebUiSession.OfRepository(JobClient.Job("webui paging", null, ("hi", "echo paging")), repository));
        await fx.Intake.WaitForTerminalAsync(first);
        // 500 copies, one a second further back than the last, on whole seconds below the real job; every
        // second one on another ref, every fifth one on another template.
        var start = DateTimeOffset.UtcNow.AddMinutes(-10);
        var newest = new DateTimeOffset(start.Year, start.Month, start.Day, start.Hour, start.Minute, start.Second, TimeSpan.Zero);
        var seeds = Enumerable.Range(0, 500).Select(i => new JobSeeder.Seed(Guid.NewGuid(), newest.AddSeconds(-i), repository,
            i % 2 == 0 ? "refs/heads/main" : "refs/heads/release", i % 5 == 0 ? "big" : "default")).ToList();
        await JobSeeder.SeedAsync(fx.DataDirectory, first, seeds);
        await SignIn();

        // Through the filter form, then "Older" until there is none.
        Driver.Navigate().GoToUrl(Url("/"));
        Driver.FindElement(By.Id("repository")).SendKeys(repository);
        Driver.FindElement(By.CssSelector("form.filters button")).Click();
        await WaitForAsync(() => Driver.Url.Contains("repository=", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "the filtered page");
        var seen = new List<Guid>();
        var pages = 0;
        while (true)
        {
            pages++;
            seen.AddRange(JobIds());
            if (Driver.FindElements(By.CssSelector("a[rel='next']")) is not [var older]) break;
            var url = Driver.Url;
            older.Click();
            await WaitForAsync(() => Driver.Url != url, TimeSpan.FromSeconds(10), "the next page");
        }
        Assert.Equal(11, pages);
        Assert.Equal([first, .. seeds.Select(s => s.Id)], seen);

        // Ref and template together: i odd and a multiple of 5, 50 jobs, one page.
        Driver.Navigate().GoToUrl(Url($"/?repository={Uri.EscapeDataString(repository)}&ref=refs%2Fheads%2Frelease&template=big"));
        Assert.Equal(seeds.Where((_, i) => i % 2 == 1 && i % 5 == 0).Select(s => s.Id), JobIds());
        Assert.Empty(Driver.FindElements(By.CssSelector("a[rel='next']")));
        Assert.Equal("refs/heads/release", Driver.FindElement(By.Id("ref")).GetAttribute("value"));

        // A time range, from inclusive to exclusive: seeds 100 to 199, two pages.
        var from = newest.AddSeconds(-199).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss", System.Globalization.CultureInfo.InvariantCulture);
        var to = newest.AddSeconds(-99).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss", System.Globalization.CultureInfo.InvariantCulture);
        Driver.Navigate().GoToUrl(Url($"/?repository={Uri.EscapeDataString(repository)}&from={from}&to={to}"));
        var ranged = JobIds();
        Driver.FindElement(By.CssSelector("a[rel='next']")).Click();
        await WaitForAsync(() => Driver.Url.Contains("before=", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "the second page of the range");
        ranged.AddRange(JobIds());
        Assert.Empty(Driver.FindElements(By.CssSelector("a[rel='next']")));
        Assert.Equal(seeds.Skip(100).Take(100).Select(s => s.Id), ranged);

        // A filter that does not parse names its field.
        Driver.Navigate().GoToUrl(Url("/?from=yesterday"));
        Assert.Contains("from:", Driver.FindElement(By.TagName("main")).Text);

        List<Guid> JobIds() => Driver.FindElements(By.CssSelector("tr[data-job]")).Select(r => Guid.Parse(r.GetAttribute("data-job")!)).ToList();
    }

    [Fact]
    public async Task The_runners_page_shows_what_runs_per_backend_and_template_and_why_a_job_waits()
    {
        var running = await fx.Intake.SubmitAsync(WebUiSession.OfRepository(JobClient.Job("webui runs", 120, ("wait", "sleep 100")), ServerFixture.LimitedRepository));
        await fx.Intake.WaitForEventAsync(running, "runner.started");
        var waiting = await fx.Intake.SubmitAsync(WebUiSession.OfRepository(JobClient.Job("webui waits", 120, ("wait", "sleep 100")), ServerFixture.LimitedRepository));
        await fx.Intake.WaitForEventAsync(waiting, "job.waiting");
        try
        {
            await SignIn();
            Driver.FindElement(By.LinkText("Runners")).Click();
            await WaitForAsync(() => Driver.FindElement(By.TagName("h1")).Text == "Runners", TimeSpan.FromSeconds(10), "the runners page");

            var row = Driver.FindElement(By.CssSelector($"table.runners tr[data-job='{running}']"));
            var group = row.FindElement(By.XPath("ancestor::table/preceding-sibling::h3[1]"));
            Assert.Equal("local", group.GetAttribute("data-backend"));
            Assert.Equal("default", group.GetAttribute("data-template"));
            var reason = Driver.FindElement(By.CssSelector($"tr[data-job='{waiting}'] td.reason")).Text;
            Assert.Contains($"repository '{ServerFixture.LimitedRepository}' is at its limit of 1", reason);
            Assert.Empty(Driver.FindElements(By.CssSelector($"tr[data-job='{waiting}'] td[data-label='Running for']")));
            // The pools come from the provisioner's reports (its in-memory bus here, as RabbitMQ elsewhere): this server's templates keep none.
            Assert.Contains("No template keeps a warm pool", Text("section.warm-pools"));
        }
        finally
        {
            foreach (var id in new[] { waiting, running }) using (await fx.Intake.PostAsync($"/api/v1/jobs/{id}/cancel", null)) { }
        }
    }

    [Fact]
    public async Task Every_page_fits_a_375_pixel_wide_screen_and_labels_its_inputs()
    {
        await SignIn();
        var id = await fx.Intake.SubmitAsync(JobClient.Job("webui narrow", null, ("hi", "echo narrow")));
        await fx.Intake.WaitForTerminalAsync(id);
        var size = Driver.Manage().Window.Size;
        try
        {
            Driver.Manage().Window.Size = new Size(375, 800);
            foreach (var path in new[] { "/", $"/jobs/{id}", "/runners", "/admin/secrets", "/admin/cache" })
            {
                Driver.Navigate().GoToUrl(Url(path));
                var width = (long)((IJavaScriptExecutor)Driver).ExecuteScript("return document.documentElement.clientWidth;")!;
                var scrollWidth = (long)((IJavaScriptExecutor)Driver).ExecuteScript("return document.documentElement.scrollWidth;")!;
                Assert.True(scrollWidth <= width, $"{path} is {scrollWidth} px wide on a {width} px screen");
                // Every visible input has a label.
                foreach (var input in Driver.FindElements(By.CssSelector("main input:not([type='hidden']), main select")))
                {
                    Assert.Single(Driver.FindElements(By.CssSelector($"label[for='{input.GetAttribute("id")}']")));
                }
            }
        }
        finally
        {
            Driver.Manage().Window.Size = size;
        }
    }

    private string Url(string path) => new Uri(fx.BaseAddress, path).ToString();

    private string Text(string css) => Driver.FindElements(By.CssSelector(css)) is [var e, ..] ? e.Text : "";

    private Task SignIn() => Driver.SignInAsync(fx.BaseAddress, ServerFixture.AdminKey);

    private void Screenshot(string name)
    {
        var folder = Environment.GetEnvironmentVariable("ECI_SCREENSHOTS") is { Length: > 0 } configured ? configured : AppContext.BaseDirectory;
        Directory.CreateDirectory(folder);
        Driver.GetScreenshot().SaveAsFile(Path.Combine(folder, name));
        output.WriteLine($"screenshot: {Path.Combine(folder, name)}");
    }

    private Task WaitForAsync(Func<bool> probe, TimeSpan within, string what) => Driver.WaitForAsync(probe, within, what);
}
