using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Attestations;
using EphemeralCI.Intake.Logs;
using EphemeralCI.Intake.Services;
using EphemeralCI.JobTokens;
using MassTransit;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Intake.Consumers;

/// <summary>
/// The runner stopped. A result the agent already reported stands; otherwise the provisioner's
/// reason decides the terminal state (a job never stays running with no runner) — unless the runner
/// was lost and the job may start again (<c>retry.infrastructure</c>): then the next attempt starts
/// once this runner is destroyed (<see cref="NextAttempt"/>).
/// </summary>
public sealed class RunnerFinishedConsumer(
    JobUpdater jobs, JobLogStore logs, AttestationSignal attestations, IJobRevocationList revocations, IOptions<JobTokenOptions> tokenOptions, ILogger<RunnerFinishedConsumer> logger) : IConsumer<RunnerFinished>
{
    public async Task Consume(ConsumeContext<RunnerFinished> context)
    {
        var m = context.Message;
        // The token of this runner's attempt dies with it, in every service (the broker marks it too; marking twice is the same).
        await revocations.RevokeAsync(m.JobId, m.Attempt, tokenOptions.Value.RevocationRetention, context.CancellationToken);
        var logEnd = m.Outcome == RunnerOutcome.Lost ? await logs.EndAsync(m.JobId, context.CancellationToken) : 0;
        // Once per runner, whatever message id carried it (a redelivery, or an announcement made again).
        var (outcome, _) = await jobs.UpdateAsync(m.JobId, RunnerEventIds.For(m.RunnerId, JobEventTypes.RunnerFinished), change =>
        {
            change.AddEvent(JobEventTypes.RunnerFinished, Describe(m),
                new { m.RunnerId, Outcome = m.Outcome.ToString(), m.ExitCode, m.Reason, m.Attempt }, m.At);
            // Only this attempt's runner decides the job: an older one's end is history.
            if (m.Attempt != change.Job.Attempt) return true;
            if (m.Outcome == RunnerOutcome.Lost && change.Job.RetryAfterLoss(m.Attempt))
            {
                change.AddEvent(JobEventTypes.Retrying,
                    $"runner {m.RunnerId} was lost ({m.Reason ?? "no reason given"}); the job starts again as attempt {change.Job.Attempt + 1} of {change.Job.InfrastructureRetries() + 1} once it is destroyed",
                    new { m.RunnerId, m.Attempt, NextAttempt = m.Attempt + 1 }, m.At);
                NextAttempt.StartIfDue(change, logEnd);
                return true;
            }
            var (status, reason) = Decide(m);
            if (change.Job.TryMoveTo(status, m.At, reason, m.ExitCode))
            {
                change.AddEvent(JobEventTypes.ForTerminal(status), reason, at: m.At);
            }
            return true;
        }, context.CancellationToken);
        if (outcome == JobUpdateOutcome.NotFound) logger.LogWarning("Ignored {Message} for unknown job {JobId}", nameof(RunnerFinished), m.JobId);
        // The runner's destruction may have been handled first (another queue): then the job is ready now.
        else attestations.Notify(m.JobId);
    }

    /// <summary>The terminal state for a job whose runner stopped before the job reached one.</summary>
    public static (JobStatus Status, string Reason) Decide(RunnerFinished m) => m.Outcome switch
    {
        RunnerOutcome.TimedOut => (JobStatus.TimedOut, m.Reason ?? "the job exceeded its timeout"),
        RunnerOutcome.Cancelled => (JobStatus.Cancelled, m.Reason ?? "the runner was stopped because the job was cancelled"),
        RunnerOutcome.Exited => (JobStatus.Failed, $"runner exited with code {m.ExitCode?.ToString() ?? "unknown"} before reporting a result"),
        RunnerOutcome.FailedToStart => (JobStatus.Failed, $"runner failed to start: {m.Reason ?? "no reason given"}"),
        RunnerOutcome.Lost => (JobStatus.Failed, $"runner was lost: {m.Reason ?? "no reason given"}"),
        RunnerOutcome.LimitExceeded => (JobStatus.Failed, m.Reason ?? "the runner hit a limit of its template"),
        _ => (JobStatus.Failed, $"runner stopped ({m.Outcome}): {m.Reason ?? "no reason given"}"),
    };

    private static string Describe(RunnerFinished m) =>
        $"runner {m.RunnerId} finished: {m.Outcome}" + (m.ExitCode is { } code ? $", exit code {code}" : "") + (m.Reason is { } r ? $" ({r})" : "");
}
