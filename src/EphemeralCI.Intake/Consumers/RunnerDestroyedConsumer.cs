using EphemeralCI.Intake.Telemetry;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Attestations;
using EphemeralCI.Intake.Logs;
using EphemeralCI.Intake.Services;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Intake.Consumers;

/// <summary>
/// The runner was torn down: the last runner entry of the timeline, with the teardown check's report;
/// whatever the check found left is a <c>runner.leftover</c> entry of its own. Then the job can be attested.
/// </summary>
public sealed class RunnerDestroyedConsumer(JobUpdater jobs, JobLogStore logs, AttestationSignal attestations, ILogger<RunnerDestroyedConsumer> logger) : IConsumer<RunnerDestroyed>
{
    public async Task Consume(ConsumeContext<RunnerDestroyed> context)
    {
        var m = context.Message;
        var logEnd = await logs.EndAsync(m.JobId, context.CancellationToken);
        // Once per runner, whatever message id carried it (a redelivery, or an announcement made again).
        var (outcome, job) = await jobs.UpdateAsync(m.JobId, RunnerEventIds.For(m.RunnerId, JobEventTypes.RunnerDestroyed), change =>
        {
            if (m.Teardown is { } report && (!report.Passed || report.Leftovers is { Count: > 0 }))
            {
                var left = report.Passed
                    ? $"teardown of runner {m.RunnerId} left something, removed on a later attempt: {string.Join(" | ", report.Leftovers!)}"
                    : $"runner {m.RunnerId} left something after {report.Attempts} cleanup attempts: " +
                      string.Join("; ", report.Checks.Where(c => !c.Passed).Select(c => $"{c.Name}: {c.Found}"));
                change.AddEvent(JobEventTypes.RunnerLeftover, Truncate(left),
                    new { m.RunnerId, report.Attempts, Remaining = report.Checks.Where(c => !c.Passed).ToList(), report.Leftovers }, m.At);
            }
            var verified = m.Teardown switch
            {
                null => " (not verified)",
                { Passed: true } => ", teardown verified",
                _ => ", teardown check FAILED",
            };
            change.Job.RunnerTemplateHash ??= m.TemplateHash;
            change.AddEvent(JobEventTypes.RunnerDestroyed, $"runner {m.RunnerId} destroyed{verified}", new { m.RunnerId, m.Backend, m.Teardown, m.Attempt }, m.At);
            change.Job.RunnerDestroyed(m.Attempt);
            // A lost runner's job starts again only now that the runner is gone: never two runners at once.
            NextAttempt.StartIfDue(change, logEnd);
            return true;
        }, context.CancellationToken);
        if (outcome == JobUpdateOutcome.Applied && job?.FinishedAt is { } finished) IntakeTelemetry.RunnerDestroyed(job.RunnerTemplate, m.Backend, m.At - finished);
        if (outcome == JobUpdateOutcome.NotFound) logger.LogWarning("Ignored {Message} for unknown job {JobId}", nameof(RunnerDestroyed), m.JobId);
        else attestations.Notify(m.JobId);
    }

    private static string Truncate(string text) => text.Length <= 2000 ? text : text[..1997] + "...";
}
