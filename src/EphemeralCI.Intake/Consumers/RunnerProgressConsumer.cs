using System.Text.RegularExpressions;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Services;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Intake.Consumers;

/// <summary>What the backend saw of the runner (scheduled, image pulled, waiting and why): a timeline entry <c>runner.{stage}</c>, never a state change.</summary>
public sealed partial class RunnerProgressConsumer(JobUpdater jobs, ILogger<RunnerProgressConsumer> logger) : IConsumer<RunnerProgress>
{
    public async Task Consume(ConsumeContext<RunnerProgress> context)
    {
        var m = context.Message;
        var (outcome, _) = await jobs.UpdateAsync(m.JobId, context.MessageId, change =>
        {
            change.AddEvent(EventType(m.Stage), m.Detail ?? $"runner {m.Stage}", new { m.Stage, m.Detail }, m.At);
            return true;
        }, context.CancellationToken);
        if (outcome == JobUpdateOutcome.NotFound) logger.LogWarning("Ignored {Message} for unknown job {JobId}", nameof(RunnerProgress), m.JobId);
    }

    /// <summary><c>runner.{stage}</c> for a plain stage name; anything else (or a name the intake's own runner events use) is <c>runner.progress</c>.</summary>
    public static string EventType(string stage) =>
        StageName().IsMatch(stage) && stage is not ("started" or "finished" or "destroyed") ? $"runner.{stage}" : "runner.progress";

    [GeneratedRegex("^[a-z][a-z_]{0,39}$")]
    private static partial Regex StageName();
}
