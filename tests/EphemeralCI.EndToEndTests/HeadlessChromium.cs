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
}
