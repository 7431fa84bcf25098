using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Services;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Intake.Consumers;

/// <summary>The runner exists: the job is running (if nothing moved it further already).</summary>
public sealed class RunnerStartedConsumer(JobUpdater jobs, ILogger<RunnerStartedConsumer> logger) : IConsumer<RunnerStarted>
{
    public async Task Consume(ConsumeContext<RunnerStarted> context)
    {
        var m = context.Message;
        // Once per runner, whatever message id carried it (a redelivery, or an announcement made again).
        var (outcome, _) = await jobs.UpdateAsync(m.JobId, RunnerEventIds.For(m.RunnerId, JobEventTypes.RunnerStarted), change =>
        {
            change.Job.TryMoveTo(JobStatus.Running, m.At);
            change.Job.RunnerTemplateHash ??= m.TemplateHash;
            // A relaxed sandbox is said where people look: on the job's own timeline.
            var relaxed = m.Relaxations is { Count: > 0 } r ? $"; the template relaxes the sandbox: {string.Join("; ", r)}" : "";
            change.AddEvent(JobEventTypes.RunnerStarted, $"runner {m.RunnerId} started on the '{m.Backend}' backend{relaxed}",
                new { m.RunnerId, m.Backend, m.TemplateHash, m.Relaxations }, m.At);
            return true;
        }, context.CancellationToken);
        if (outcome == JobUpdateOutcome.NotFound) logger.LogWarning("Ignored {Message} for unknown job {JobId}", nameof(RunnerStarted), m.JobId);
    }
}
