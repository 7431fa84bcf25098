using System.Diagnostics;
using System.Net.Http.Headers;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using EphemeralCI.IntegrationTests.Infrastructure;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using Xunit;
using Xunit.Abstractions;

namespace EphemeralCI.EndToEndTests.Dashboard;

/// <summary>
/// The Aspire dashboard as a newcomer meets it with <c>eng/run.sh</c>: the real AppHost process in external mode
/// (its own databases and RabbitMQ virtual host), signed in through the login link the AppHost prints, in Debian's
/// Chromium driven by Selenium (chromium + chromium-driver; nothing is downloaded). Every service must come up
/// running with no error badge, and a job must show as a trace. Screenshots go to <c>ECI_SCREENSHOTS</c>
/// (docs/images when refreshed by hand), else the test's output folder.
/// </summary>
public sealed partial class DashboardBrowserTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string AdminKey = "eci_dashboard_test_admin_key_0123456789abcdefghijk";
    private static readonly string[] Services = ["intake", "provisioner", "secrets-broker", "cache"];
    private readonly StringBuilder _log = new();
    private readonly int _dashboardPort = FreePort.Next();
    private Process? _appHost;
    private ChromeDriver? _browser;

    private static string AppHostDll =>
        typeof(DashboardBrowserTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "AppHostDll").Value!;

    private string Log { get { lock (_log) return _log.ToString(); } }

    public async Task InitializeAsync()
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(AppHostDll);
        foreach (var (key, value) in new Dictionary<string, string>
        {
            ["Infrastructure__Mode"] = "External",
            ["ConnectionStrings__intakedb"] = await RealServices.CreateDatabaseAsync("dash_intake"),
            ["ConnectionStrings__provisionerdb"] = await RealServices.CreateDatabaseAsync("dash_prov"),
            ["ConnectionStrings__secretsdb"] = await RealServices.CreateDatabaseAsync("dash_secrets"),
            ["ConnectionStrings__cachedb"] = await RealServices.CreateDatabaseAsync("dash_cache"),
            ["ConnectionStrings__redis"] = RealServices.Redis,
            ["ConnectionStrings__rabbitmq"] = await RealServices.CreateRabbitMqVirtualHostAsync("dash"),
            ["ConnectionStrings__minio"] = RealServices.S3,
            ["EphemeralCI__BootstrapAdminKey"] = AdminKey,
            // What eng/run.sh's launch profile sets, on ports of this test's own.
            ["ASPNETCORE_URLS"] = $"http://localhost:{_dashboardPort}",
            ["ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL"] = $"http://localhost:{FreePort.Next()}",
            ["ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL"] = $"http://localhost:{FreePort.Next()}",
            ["ASPIRE_ALLOW_UNSECURED_TRANSPORT"] = "true",
            ["DOTNET_ENVIRONMENT"] = "Development",
            ["ASPNETCORE_ENVIRONMENT"] = "Development",
        })
        {
            start.Environment[key] = value;
        }
        _appHost = Process.Start(start)!;
        _appHost.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
        _appHost.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
        _appHost.BeginOutputReadLine();
        _appHost.BeginErrorReadLine();

        _browser = HeadlessChromium.Start();
    }

    [Fact]
    public async Task A_clean_start_shows_every_service_running_with_no_error_badge_and_a_job_as_one_trace()
    {
        var browser = _browser!;
        var login = await WaitForAsync(() => LoginLink().Match(Log) is { Success: true } m ? m.Value : null, TimeSpan.FromMinutes(3), "the AppHost's dashboard login link");
        browser.Navigate().GoToUrl(login);

        // Every service running (and healthy: the dashboard says Running only once its health checks pass).
        await WaitForAsync(() =>
        {
            var states = Services.ToDictionary(s => s, s => RowState(browser, s));
            if (states.FirstOrDefault(s => s.Value is "Finished" or "Exited" or "Failed to start") is { Key: { } stopped })
            {
                Assert.Fail($"{stopped} stopped ({states[stopped]}); its console:\n{ConsoleOf(browser, stopped, new Uri(login))}");
            }
            return states.Values.All(s => s == "Running") ? "" : null;
        }, TimeSpan.FromMinutes(4), "every service running on the resources page");
        // Errors logged during start-up would show as a badge on their resource's row; give late ones a moment.
        await Task.Delay(TimeSpan.FromSeconds(5));
        var badges = browser.FindElements(By.CssSelector(".resource-error-badge"));
        Assert.True(badges.Count == 0, $"{badges.Count} error badge(s) on the resources page:\n{browser.FindElement(By.TagName("body")).Text}");
        Screenshot(browser, "dashboard-resources.png");

        // A job, then its trace: the intake's submit span is the root, the rest of the job hangs under it.
        using var intake = new HttpClient { BaseAddress = new Uri("http://localhost:5180") };
        intake.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        var id = await intake.SubmitAsync(JobClient.Job("seen in the dashboard", null, ("hello", "echo traced")));
        Assert.Equal("succeeded", (await intake.WaitForTerminalAsync(id, TimeSpan.FromMinutes(2))).GetProperty("status").GetString());
        await intake.WaitForEventAsync(id, "runner.destroyed");

        browser.Navigate().GoToUrl(new Uri(new Uri(login), "/traces").ToString());
        await WaitForAsync(() => browser.FindElement(By.TagName("body")).Text.Contains("POST /api/v1/jobs", StringComparison.Ordinal) ? "" : null,
            TimeSpan.FromMinutes(1), "the job's trace on the traces page");
        // Nothing in the background is a trace of its own: no root that is only a database call (the health
        // probes' checks were, every few seconds, before they ran with instrumentation suppressed).
        var names = browser.FindElement(By.TagName("body")).Text.Split('\n').Select(l => l.Trim()).ToList();
        Assert.DoesNotContain(names, n => n.EndsWith(": postgresql", StringComparison.Ordinal));

        // The job's trace itself: submit, bus, provisioner, runner agent, secrets, runner destroyed.
        // Found and clicked in one go: the grid renders only the rows in view and re-renders as traces arrive.
        // Scrolled into the middle first (its sticky header may cover a row at the top).
        await WaitForAsync(() =>
        {
            foreach (var cell in browser.FindElements(By.XPath("//*[not(*)][contains(normalize-space(.), 'POST /api/v1/jobs')]")))
            {
                try
                {
                    if (cell.Text.Contains('{')) continue;
                    ((IJavaScriptExecutor)browser).ExecuteScript("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", cell);
                    return "";
                }
                catch (StaleElementReferenceException) { }
            }
            return null;
        }, TimeSpan.FromSeconds(30), "the job's trace to click");
        await WaitForAsync(() => browser.Url.Contains("/traces/detail/", StringComparison.Ordinal)
            && browser.FindElement(By.TagName("body")).Text.Contains("provisioner", StringComparison.Ordinal) ? "" : null,
            TimeSpan.FromSeconds(30), "the job's trace detail");
        await Task.Delay(TimeSpan.FromSeconds(1));
        Screenshot(browser, "dashboard-traces.png");
    }

    /// <summary>The last lines of a resource's console log, as its dashboard page shows them.</summary>
    private static string ConsoleOf(IWebDriver browser, string resource, Uri dashboard)
    {
        browser.Navigate().GoToUrl(new Uri(dashboard, $"/consolelogs/resource/{resource}").ToString());
        Thread.Sleep(TimeSpan.FromSeconds(3));
        return string.Join('\n', browser.FindElement(By.TagName("body")).Text.Split('\n').TakeLast(40));
    }

    /// <summary>The state shown in the resources grid on the row of <paramref name="resource"/>, or null if the row is not there yet.</summary>
    private static string? RowState(IWebDriver browser, string resource)
    {
        foreach (var row in browser.FindElements(By.CssSelector("[role='row']")))
        {
            string text;
            try { text = row.Text; } catch (StaleElementReferenceException) { continue; }
            var cells = text.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (cells.Length > 1 && cells.Contains(resource)) return cells.FirstOrDefault(c => c is "Running" or "Starting" or "Waiting" or "Not started" or "Finished" or "Exited" or "Failed to start" or "Unhealthy");
        }
        return null;
    }

    private void Screenshot(ITakesScreenshot browser, string name)
    {
        var folder = Environment.GetEnvironmentVariable("ECI_SCREENSHOTS") is { Length: > 0 } configured ? configured : AppContext.BaseDirectory;
        Directory.CreateDirectory(folder);
        browser.GetScreenshot().SaveAsFile(Path.Combine(folder, name));
        output.WriteLine($"screenshot: {Path.Combine(folder, name)}");
    }

    private async Task<string> WaitForAsync(Func<string?> probe, TimeSpan within, string what)
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            if (probe() is { } found) return found;
            if (_appHost!.HasExited || DateTime.UtcNow > deadline)
            {
                var page = _browser?.FindElement(By.TagName("body")).Text;
                if (_browser is { } browser)
                {
                    // What the browser had, to see why: the page's HTML and a screenshot beside the test's output.
                    File.WriteAllText(Path.Combine(AppContext.BaseDirectory, "dashboard-failure.html"), browser.PageSource);
                    Screenshot(browser, "dashboard-failure.png");
                }
                Assert.Fail($"gave up waiting for {what}\n--- page ---\n{page}\n--- AppHost output ---\n{string.Join('\n', Log.Split('\n').TakeLast(60))}");
            }
            await Task.Delay(500);
        }
    }

    [GeneratedRegex(@"http://localhost:\d+/login\?t=[0-9a-fA-F]+")]
    private static partial Regex LoginLink();

    public async Task DisposeAsync()
    {
        _browser?.Quit();
        _browser?.Dispose();
        if (_appHost is { HasExited: false })
        {
            // Ctrl+C as a person would: the AppHost stops its services (a kill would leave them running).
            Process.Start("kill", ["-INT", _appHost.Id.ToString()])!.WaitForExit();
            using var stopping = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try { await _appHost.WaitForExitAsync(stopping.Token); }
            catch (OperationCanceledException) { _appHost.Kill(entireProcessTree: true); }
        }
        _appHost?.Dispose();
        output.WriteLine(string.Join('\n', Log.Split('\n').TakeLast(40)));
    }
}
