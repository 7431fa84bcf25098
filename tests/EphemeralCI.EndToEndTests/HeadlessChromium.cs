using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>Debian's Chromium (chromium + chromium-driver) driven by Selenium, headless; nothing is downloaded.</summary>
public static class HeadlessChromium
{
    public static ChromeDriver Start(string windowSize = "1600,1000")
    {
        var options = new ChromeOptions { BinaryLocation = "/usr/bin/chromium" };
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", $"--window-size={windowSize}");
        Assert.True(File.Exists("/usr/bin/chromedriver") && File.Exists(options.BinaryLocation),
            "Debian's chromium and chromium-driver are needed (eng/services.sh start installs them)");
        var service = ChromeDriverService.CreateDefaultService("/usr/bin", "chromedriver");
        service.SuppressInitialDiagnosticInformation = true;
        return new ChromeDriver(service, options, TimeSpan.FromMinutes(2));
    }

    /// <summary>Signs in through the sign-in form with <paramref name="apiKey"/> and waits for the jobs page it leads to.</summary>
    public static async Task SignInAsync(this ChromeDriver driver, Uri baseAddress, string apiKey)
    {
        driver.Navigate().GoToUrl(new Uri(baseAddress, "/signin").ToString());
        driver.FindElement(By.Id("key")).SendKeys(apiKey);
        driver.FindElement(By.CssSelector("form[action='/signin'] button")).Click();
        // The click only starts the form post: until the jobs page has loaded, the h1 found may be the sign-in page's,
        // gone (stale) a moment later. Wait for the new page instead of reading the old one.
        await driver.WaitForAsync(() => !driver.Url.Contains("/signin", StringComparison.Ordinal) && driver.FindElement(By.TagName("h1")).Text == "Jobs",
            TimeSpan.FromSeconds(15), "the jobs page after signing in");
    }

    /// <summary>Polls <paramref name="probe"/> until it holds; fails with the page's text after <paramref name="within"/> (not a timing assertion).</summary>
    public static async Task WaitForAsync(this ChromeDriver driver, Func<bool> probe, TimeSpan within, string what)
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
                Assert.Fail($"gave up waiting for {what}\n--- page {driver.Url} ---\n{driver.FindElement(By.TagName("body")).Text}");
            }
            await Task.Delay(250);
        }
    }
}
