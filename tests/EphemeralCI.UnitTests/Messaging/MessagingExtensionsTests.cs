using EphemeralCI.Messaging;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Xunit;

namespace EphemeralCI.UnitTests.Messaging;

public sealed class MessagingExtensionsTests
{
    [Fact]
    public void The_bus_never_reports_usage_telemetry_to_the_internet()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.AddEciMessaging(_ => { });
        using var services = builder.Services.BuildServiceProvider();
        Assert.False(services.GetRequiredService<IOptions<UsageTelemetryOptions>>().Value.Enabled);
    }
}
