using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

public sealed class BootstrapKeyTests(BadBootstrapKeyIntakeFactory app) : IClassFixture<BadBootstrapKeyIntakeFactory>
{
    [Fact]
    public void A_malformed_configured_admin_key_stops_start_up_naming_the_setting()
    {
        var ex = Assert.ThrowsAny<Exception>(() => app.Services);
        Assert.Contains("Intake:BootstrapAdminKey", ex.GetBaseException().Message);
        Assert.DoesNotContain("changeme", ex.ToString()); // the configured value is never echoed
    }
}
