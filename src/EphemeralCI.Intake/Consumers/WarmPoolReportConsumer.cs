using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Services;
using MassTransit;

namespace EphemeralCI.Intake.Consumers;

/// <summary>A provisioner instance's warm pools, as they are now: recorded for the web UI's Runners page.</summary>
public sealed class WarmPoolReportConsumer(WarmPoolReports reports) : IConsumer<WarmPoolReport>
{
    public Task Consume(ConsumeContext<WarmPoolReport> context) => reports.RecordAsync(context.Message, context.CancellationToken);
}
