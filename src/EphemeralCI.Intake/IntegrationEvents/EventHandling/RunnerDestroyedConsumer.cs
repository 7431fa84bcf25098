using EphemeralCI.Intake.Telemetry;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Services;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Intake.IntegrationEvents.EventHandling;

/// <summary>Every trace of the runner is gone: the last entry of the timeline.</summary>
public sealed class RunnerDestroyedConsumer(JobUpdater jobs, ILogger<RunnerDestroyedConsumer> logger) : IConsumer<RunnerDestroyed>
{
    public async Task Consume(ConsumeContext<RunnerDestroyed> context)
    {
        var m = context.Message;
        // Once per runner, whatever message id carried it (a redelivery, or an announcement made again).
        var (outcome, job) = await jobs.UpdateAsync(m.JobId, RunnerEventIds.For(m.RunnerId, JobEventTypes.RunnerDestroyed), change =>
        {
            change.AddEvent(JobEventTypes.RunnerDestroyed, $"runner {m.RunnerId} destroyed", new { m.RunnerId }, m.At);
            return true;
        }, context.CancellationToken);
        if (outcome == JobUpdateOutcome.Applied && job?.FinishedAt is { } finished) IntakeTelemetry.RunnerDestroyed(job.RunnerTemplate, m.At - finished);
        if (outcome == JobUpdateOutcome.NotFound) logger.LogWarning("Ignored {Message} for unknown job {JobId}", nameof(RunnerDestroyed), m.JobId);
    }
}
