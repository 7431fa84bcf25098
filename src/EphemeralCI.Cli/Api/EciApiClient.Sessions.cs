using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Text.Json;

namespace EphemeralCI.Cli.Api;

/// <summary>A held runner as the intake describes it (/api/v1/sessions).</summary>
public sealed record SessionSummary(Guid Id, string Repository, string Ref, string CommitSha, string RunnerTemplate, string Status,
    string? StatusReason, int? ExitCode, int TimeoutSeconds, int IdleTimeoutSeconds, int Commands);

/// <summary>How a command ended: its exit code, or (null) the session ended first, with the session's end as the server said it.</summary>
public sealed record CommandOutcome(int? ExitCode, LogEnd? SessionEnd);

public sealed partial class EciApiClient
{
    public Task<ApiResult<SessionSummary>> OpenSessionAsync(object session, string idempotencyKey, CancellationToken ct) =>
        SendAsync<SessionSummary>(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/sessions") { Content = JsonContent.Create(session, options: Json) };
            request.Headers.Add("Idempotency-Key", idempotencyKey);
            return request;
        }, retry: true, ct);

    public Task<ApiResult<SessionSummary>> GetSessionAsync(Guid id, CancellationToken ct) => GetAsync<SessionSummary>($"api/v1/sessions/{id}", ct);

    /// <summary>Ends the session (its runner is destroyed); deleting an ended session is not an error, so a retry is safe.</summary>
    public Task<ApiResult<SessionSummary>> DeleteSessionAsync(Guid id, CancellationToken ct) =>
        SendAsync<SessionSummary>(() => new HttpRequestMessage(HttpMethod.Delete, $"api/v1/sessions/{id}"), retry: true, ct);

    /// <summary>Runs one command in the session, handing its output to <paramref name="output"/> as it comes. Not retried: a command runs at most once.</summary>
    public async Task<CommandOutcome> RunSessionCommandAsync(Guid id, string run, Func<string, Task> output, CancellationToken ct)
    {
        using var response = await SendRawAsync(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, $"api/v1/sessions/{id}/commands") { Content = JsonContent.Create(new { run }, options: Json) };
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
            return request;
        }, retry: false, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.Content.Headers.ContentType?.MediaType != "text/event-stream")
        {
            throw NotAnIntake($"POST api/v1/sessions/{id}/commands", "it did not answer with an event stream");
        }
        await foreach (var item in SseParser.Create(await response.Content.ReadAsStreamAsync(ct)).EnumerateAsync(ct))
        {
            switch (item.EventType)
            {
                case "log":
                    await output(item.Data);
                    break;
                case "exit":
                    return new(JsonDocument.Parse(item.Data).RootElement.GetProperty("exitCode").GetInt32(), null);
                case "end":
                    return new(null, JsonSerializer.Deserialize<LogEnd>(item.Data, Json));
            }
        }
        throw new CliException($"The command stream of session {id} ended without the command's result (the connection was cut).", ExitCodes.Unreachable);
    }
}
