using Aspire.Hosting.Testing;
using Xunit;

namespace EphemeralCI.EndToEndTests;

public sealed class ExternalModeTests
{
    [Fact]
    public async Task Missing_connection_string_stops_the_apphost_at_once_naming_the_setting()
    {
        var failure = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.EphemeralCI_AppHost>(
                ["--Infrastructure:Mode=External", "--ConnectionStrings:intakedb=Host=127.0.0.1;Database=x"],
                (options, _) => options.DisableDashboard = true);
            await using var app = await builder.BuildAsync();
        });
        var message = failure.GetBaseException().Message;
        Assert.Contains("ConnectionStrings:provisionerdb", message);
        Assert.Contains("ConnectionStrings:rabbitmq", message);
        Assert.DoesNotContain("ConnectionStrings:intakedb", message);
    }
}
