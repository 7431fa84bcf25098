using OpenQA.Selenium;
using Xunit;

namespace EphemeralCI.EndToEndTests.WebUi;

/// <summary>
/// The Runners page of the distributed topology (the AppHost: intake and provisioner are separate processes on
/// RabbitMQ) shows the provisioner's warm pool, in a real browser.
/// </summary>
[Collection(AppHostCollection.Name)]
public sealed class WarmPoolPageTests(AppHostFixture fx)
{
    [Fact]
    public async Task The_runners_page_shows_the_warm_pool_the_provisioner_reported()
    {
        var driver = HeadlessChromium.Start("1280,900");
        try
        {
            await driver.SignInAsync(fx.Intake.BaseAddress!, AppHostFixture.AdminKey);
            // The provisioner reports at its start and every 15 s; the page reads what it last said.
            var row = $"section.warm-pools tr[data-template='{AppHostFixture.WarmTemplate}']";
            await driver.WaitForAsync(() =>
            {
                if (driver.FindElements(By.CssSelector(row)).Count == 1) return true;
                driver.Navigate().GoToUrl(new Uri(fx.Intake.BaseAddress!, "/runners").ToString());
                return false;
            }, TimeSpan.FromSeconds(60), "the warm pool on the runners page");

            string Cell(string label) => driver.FindElement(By.CssSelector($"{row} td[data-label='{label}']")).Text;
            Assert.Equal("local", Cell("Backend"));
            Assert.Equal("1", Cell("Pool size"));
            Assert.Contains(Cell("Ready"), new[] { "0", "1" });
            Assert.Equal("1", Cell("Provisioners"));
            Assert.Matches(@"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$", Cell("As of"));
        }
        finally
        {
            driver.Quit();
            driver.Dispose();
        }
    }
}
