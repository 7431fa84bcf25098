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
    public async Task The_jobs_page_fits_a_375_pixel_wide_screen()
    {
        await SignIn();
        await fx.Intake.SubmitAsync(JobClient.Job("webui narrow", null, ("hi", "echo narrow")));
        var size = Driver.Manage().Window.Size;
        try
        {
            Driver.Manage().Window.Size = new Size(375, 800);
            Driver.Navigate().GoToUrl(Url("/"));
            var width = (long)((IJavaScriptExecutor)Driver).ExecuteScript("return document.documentElement.clientWidth;")!;
            var scrollWidth = (long)((IJavaScriptExecutor)Driver).ExecuteScript("return document.documentElement.scrollWidth;")!;
            Assert.True(scrollWidth <= width, $"the page is {scrollWidth} px wide on a {width} px screen");
            // Every input has a label.
            foreach (var input in Driver.FindElements(By.CssSelector("form.filters input, form.filters select")))
            {
                Assert.Single(Driver.FindElements(By.CssSelector($"label[for='{input.GetAttribute("id")}']")));
            }
        }
        finally
        {
            Driver.Manage().Window.Size = size;
        }
    }

    private string Url(string path) => new Uri(fx.BaseAddress, path).ToString();

    private string Text(string css) => Driver.FindElements(By.CssSelector(css)) is [var e, ..] ? e.Text : "";

    private async Task SignIn()
    {
        Driver.Navigate().GoToUrl(Url("/signin"));
        Driver.FindElement(By.Id("key")).SendKeys(ServerFixture.AdminKey);
        Driver.FindElement(By.CssSelector("form[action='/signin'] button")).Click();
        // The click only starts the form post: until the jobs page has loaded, the h1 found may be the sign-in page's,
        // gone (stale) a moment later. Wait for the new page instead of reading the old one.
        await WaitForAsync(() => !Driver.Url.Contains("/signin", StringComparison.Ordinal) && Driver.FindElement(By.TagName("h1")).Text == "Jobs",
            TimeSpan.FromSeconds(15), "the jobs page after signing in");
    }

    private void Screenshot(string name)
    {
        var folder = Environment.GetEnvironmentVariable("ECI_SCREENSHOTS") is { Length: > 0 } configured ? configured : AppContext.BaseDirectory;
        Directory.CreateDirectory(folder);
        Driver.GetScreenshot().SaveAsFile(Path.Combine(folder, name));
        output.WriteLine($"screenshot: {Path.Combine(folder, name)}");
    }

    private async Task WaitForAsync(Func<bool> probe, TimeSpan within, string what)
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            try
            {
                if (probe()) return;
            }
            catch (Exception e) when (e is StaleElementReferenceException or NoSuchElementException) { } // the page is (re)loading under us
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"gave up waiting for {what}\n--- page {Driver.Url} ---\n{Driver.FindElement(By.TagName("body")).Text}");
            }
            await Task.Delay(250);
        }
    }
}
