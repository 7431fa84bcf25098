using EphemeralCI.Intake.Telemetry;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Services;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Intake.Consumers;

/// <summary>The provisioner took the job: queued → provisioning.</summary>
public sealed class JobProvisioningConsumer(JobUpdater jobs, ILogger<JobProvisioningConsumer> logger) : IConsumer<JobProvisioning>
{
    public async Task Consume(ConsumeContext<JobProvisioning> context)
    {
        var m = context.Message;
        var (outcome, job) = await jobs.UpdateAsync(m.JobId, context.MessageId, change =>
        {
            // Only from queued: a late or redelivered message must not pull a running job back.
            if (change.Job.Status == JobStatus.Queued) change.Job.TryMoveTo(JobStatus.Provisioning, m.At);
            change.AddEvent(JobEventTypes.Provisioning, $"provisioning a runner on the '{m.Backend}' backend", new { m.Backend }, m.At);
            return true;
        }, context.CancellationToken);
        // Under load this notice can reach the intake after the agent fetched the job; the runner API then
        // had no receipt time to measure from, so the start is measured here (to the job's start).
        if (outcome == JobUpdateOutcome.Applied && job is { AgentKeyHash: not null, StartedAt: { } started })
        {
            IntakeTelemetry.RunnerStarted(job.RunnerTemplate, m.Backend, started - m.At);
        }
        if (outcome == JobUpdateOutcome.NotFound) logger.LogWarning("Ignored {Message} for unknown job {JobId}", nameof(JobProvisioning), m.JobId);
    }
}
