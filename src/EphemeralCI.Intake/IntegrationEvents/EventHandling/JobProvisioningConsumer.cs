using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Services;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Intake.IntegrationEvents.EventHandling;

/// <summary>The provisioner took the job: queued → provisioning.</summary>
public sealed class JobProvisioningConsumer(JobUpdater jobs, ILogger<JobProvisioningConsumer> logger) : IConsumer<JobProvisioning>
{
    public async Task Consume(ConsumeContext<JobProvisioning> context)
    {
        var m = context.Message;
        var (outcome, _) = await jobs.UpdateAsync(m.JobId, context.MessageId, change =>
        {
            // Only from queued: a late or redelivered message must not pull a running job back.
            if (change.Job.Status == JobStatus.Queued) change.Job.TryMoveTo(JobStatus.Provisioning, m.At);
            change.AddEvent(JobEventTypes.Provisioning, $"provisioning a runner on the '{m.Backend}' backend", new { m.Backend }, m.At);
            return true;
        }, context.CancellationToken);
        if (outcome == JobUpdateOutcome.NotFound) logger.LogWarning("Ignored {Message} for unknown job {JobId}", nameof(JobProvisioning), m.JobId);
    }
}
