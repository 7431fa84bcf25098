using System.Net.ServerSentEvents;
using System.Text.Json;
using EphemeralCI.Cli.Api;
using EphemeralCI.Cli.Hosting;
using EphemeralCI.Cli.Output;
using Spectre.Console;

namespace EphemeralCI.Cli.Commands;

/// <summary>
/// Follows a job until it ends: its log over server-sent events (written as it arrives), and its
/// timeline polled beside it for status and step progress. The stream is resumed with
/// Last-Event-ID when the connection drops, so no log line is lost or repeated.
/// </summary>
public sealed class JobFollower(EciApiClient api, EciContext context)
{
    public const int MaxReconnects = 5;
    private readonly Lock _output = new();
    private int _eventsShown;

    /// <summary>Where the log goes: stdout normally, stderr when stdout is reserved for --json.</summary>
    public required TextWriter LogOut { get; init; }
    /// <summary>Write the log's bytes as they are (<c>--raw</c>), escape sequences and the agent's line marker included.</summary>
    public bool Raw { get; init; }
    /// <summary>Show the agent's own lines in colour (the log goes to a colour terminal).</summary>
    public bool Styled { get; init; }
    public bool ShowProgress { get; init; } = true;
    public int? StepCount { get; init; }
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    public async Task<LogEnd> FollowAsync(Guid id, CancellationToken ct)
    {
        using var stopProgress = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var progress = ShowProgress ? ProgressLoopAsync(id, stopProgress.Token) : Task.CompletedTask;
        try
        {
            var end = await StreamLogAsync(id, ct);
            await stopProgress.CancelAsync();
            await progress;
            // Whatever happened between the last poll and the end (the last step's result) is shown too.
            if (ShowProgress) await ShowNewEventsAsync(id, ct);
            return end;
        }
        finally
        {
            await stopProgress.CancelAsync();
            await progress;
        }
    }

    /// <summary>Runs <paramref name="ask"/> with the output held, so a question is not buried under log lines.</summary>
    public T WithOutputPaused<T>(Func<T> ask)
    {
        lock (_output) return ask();
    }

    private async Task<LogEnd> StreamLogAsync(Guid id, CancellationToken ct)
    {
        string? lastEventId = null;
        var failures = 0;
        // One writer for the whole stream: an escape sequence split across two events is still recognised.
        var writer = new JobLogWriter(LogOut, Styled);
        while (true)
        {
            try
            {
                using var response = await api.OpenLogStreamAsync(id, lastEventId, ct);
                await using var stream = await response.Content.ReadAsStreamAsync(ct);
                await foreach (var item in SseParser.Create(stream).EnumerateAsync(ct))
                {
                    failures = 0;
                    if (item.EventId is { Length: > 0 } eventId) lastEventId = eventId;
                    if (item.EventType == "log")
                    {
                        lock (_output)
                        {
                            if (Raw) LogOut.Write(item.Data);
                            else writer.Write(item.Data);
                            LogOut.Flush();
                        }
                    }
                    else if (item.EventType == "end")
                    {
                        if (!Raw) lock (_output) writer.Complete();
                        return JsonSerializer.Deserialize<LogEnd>(item.Data, EciApiClient.Json)
                            ?? throw new CliException("The server ended the log stream with an empty result.", ExitCodes.Error);
                    }
                }
                // The stream closed without an end event: the connection was cut (a proxy timeout, say).
            }
            catch (Exception) when (ct.IsCancellationRequested)
            {
                // Stopping mid-read surfaces as whatever the transport throws; it is still just a stop.
                throw new OperationCanceledException(ct);
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException)
            {
                // Resumed below from the last event seen.
            }
            catch (CliException) when (failures < MaxReconnects && !ct.IsCancellationRequested)
            {
                // Unreachable for a moment (a restart); the budget below bounds how long we keep trying.
            }
            if (++failures > MaxReconnects)
            {
                throw new CliException($"Lost the log stream of job {id} and could not resume it.", ExitCodes.Unreachable,
                    [$"The job is not affected; see it with `eci jobs show {id}`."]);
            }
            await Task.Delay(TimeSpan.FromSeconds(failures), ct);
        }
    }

    private async Task ProgressLoopAsync(Guid id, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await ShowNewEventsAsync(id, ct);
                await Task.Delay(PollInterval, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is CliException or EciApiException)
            {
                // Progress is a courtesy; the log stream reports a server that is really gone.
                try { await Task.Delay(PollInterval, ct); } catch (OperationCanceledException) { return; }
            }
        }
    }

    private async Task ShowNewEventsAsync(Guid id, CancellationToken ct)
    {
        var timeline = (await api.GetEventsAsync(id, ct)).Value;
        lock (_output)
        {
            for (; _eventsShown < timeline.Events.Count; _eventsShown++)
            {
                var line = Describe(timeline.Events[_eventsShown], StepCount);
                if (line is not null) context.Err.MarkupLine($"[grey]{timeline.Events[_eventsShown].At.ToLocalTime():HH:mm:ss}[/] {line}");
            }
        }
    }

    /// <summary>One timeline entry as a line of markup; null for entries not worth a line.</summary>
    public static string? Describe(JobEventItem e, int? stepCount)
    {
        // Step names and messages come from the job: no control characters reach the terminal through them either.
        var message = Markup.Escape(JobLogWriter.Plain(e.Message ?? e.Type));
        int? Number(string name) =>
            e.Data is { ValueKind: JsonValueKind.Object } d && d.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;
        string StepName() =>
            e.Data is { ValueKind: JsonValueKind.Object } d && d.TryGetProperty("stepName", out var v) && v.ValueKind == JsonValueKind.String
                ? Markup.Escape(JobLogWriter.Plain(v.GetString()!)) : "";
        var step = Number("stepIndex") is { } index ? $"step {index + 1}{(stepCount is { } n ? "/" + n : "")}" : "step";
        return e.Type switch
        {
            "step.started" => $"[blue]▶[/] {step} [bold]{StepName()}[/]",
            "step.finished" when Number("exitCode") is 0 => $"[green]✓[/] {step} [bold]{StepName()}[/]",
            "step.finished" => $"[red]✗[/] {step} [bold]{StepName()}[/] exited {Number("exitCode")}",
            "job.succeeded" => $"[green]{message}[/]",
            "job.failed" or "job.timed_out" => $"[red]{message}[/]",
            "job.cancelled" or "job.cancel_requested" => $"[yellow]{message}[/]",
            "runner.leftover" => $"[red]{message}[/]",
            _ => $"[grey]{message}[/]",
        };
    }
}
