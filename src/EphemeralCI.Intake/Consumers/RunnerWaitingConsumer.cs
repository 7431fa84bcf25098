using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Services;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Intake.Consumers;

/// <summary>The provisioner holds the job back: the timeline says why (the status stays queued).</summary>
public sealed class RunnerWaitingConsumer(JobUpdater jobs, ILogger<RunnerWaitingConsumer> logger) : IConsumer<RunnerWaiting>
{
    public async Task Consume(ConsumeContext<RunnerWaiting> context)
    {
        var m = context.Message;
        var (outcome, _) = await jobs.UpdateAsync(m.JobId, context.MessageId, change =>
        {
            change.AddEvent(JobEventTypes.Waiting, m.Reason, new { m.Reason }, m.At);
            return true;
        }, context.CancellationToken);
        if (outcome == JobUpdateOutcome.NotFound) logger.LogWarning("Ignored {Message} for unknown job {JobId}", nameof(RunnerWaiting), m.JobId);
    }
}
