using EphemeralCI.IntegrationTests.Infrastructure;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Text.Json;

namespace EphemeralCI.Benchmarks;

/// <summary>
/// The all-in-one server, one client, samples taken in turn: `eci run` of a one-step job (submit → the log stream's
/// end event, as `eci run` waits for it) against a session (open → the first command's exit event, which is what a
/// GitLab stage or a shell waits for) and the next command in a session already open.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class SessionBenchmark : IBenchmark
{
    public string Name => "sessions";
    private const string AdminKey = "eci_sessions_bench_admin_key_0123456789abcdefghijklmnopqr";

    public async Task<string> RunAsync(BenchmarkOptions options)
    {
        var count = Math.Min(options.Count, 50);
        var dataDir = Path.Combine(Path.GetTempPath(), "eci-sessions-bench-" + Guid.NewGuid().ToString("N")[..8]);
        var address = new Uri($"http://127.0.0.1:{FreePort.Next()}");
        using var server = ServerProcess.Start(address, dataDir, AdminKey, ["--Provisioner:Reconciler:IntervalSeconds=1", "--Provisioner:Limits:PerBackend:local=4"]);
        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        try
        {
            await ServerProcess.WaitHealthyAsync(http, server);
            var held = await OpenAsync(http);
            await CommandAsync(http, held); // its runner is up before the warm samples
            var rows = await ScenarioResult.MeasureInterleavedAsync(
            [
                ("`eci run` of a one-step job: submit → job over", async _ =>
                {
                    using var submitted = await http.PostAsJsonAsync("/api/v1/jobs", Identity(new { steps = new[] { new { run = "echo hi" } } }));
                    var id = (await submitted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
                    await EventStreamAsync(http, new HttpRequestMessage(HttpMethod.Get, $"/api/v1/jobs/{id}/logs?follow=true"), "end");
                }),
                ("session: open → first command's exit code", async _ =>
                {
                    var id = await OpenAsync(http);
                    await CommandAsync(http, id);
                    using var deleted = await http.DeleteAsync($"/api/v1/sessions/{id}");
                }),
                ("session already open: command → its exit code", async _ => await CommandAsync(http, held)),
            ], count, concurrency: 1);
            using var ended = await http.DeleteAsync($"/api/v1/sessions/{held}");
            return $"Measured {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores: the all-in-one server (SQLite, " +
                   $"in-memory bus, local sandboxes, the native agent), one client, {count} samples of each taken in turn (the throughput column " +
                   "is the same operations run again one at a time). A one-step job `echo hi` against a session's `echo hi`.\n\n" +
                   ScenarioResult.Header + "\n" + string.Join("\n", rows.Select(r => r.Row())) + "\n";
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
            try { Directory.Delete(dataDir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static object Identity(object rest)
    {
        var body = JsonSerializer.SerializeToNode(rest, JsonSerializerOptions.Web)!.AsObject();
        body["repository"] = "acme/widgets";
        body["ref"] = "refs/heads/main";
        body["commitSha"] = "0123456789abcdef0123456789abcdef01234567";
        body["runnerTemplate"] = "default";
        return body;
    }

    private static async Task<Guid> OpenAsync(HttpClient http)
    {
        using var opened = await http.PostAsJsonAsync("/api/v1/sessions", Identity(new { session = new { idleTimeoutSeconds = 300 } }));
        opened.EnsureSuccessStatusCode();
        return (await opened.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    private static Task CommandAsync(HttpClient http, Guid id) =>
        EventStreamAsync(http, new HttpRequestMessage(HttpMethod.Post, $"/api/v1/sessions/{id}/commands") { Content = JsonContent.Create(new { run = "echo hi" }) }, "exit");

    private static async Task EventStreamAsync(HttpClient http, HttpRequestMessage request, string until)
    {
        using (request)
        using (var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            response.EnsureSuccessStatusCode();
            await foreach (var item in SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync())
            {
                if (item.EventType == until) return;
                if (item.EventType == "end") throw new InvalidOperationException($"ended before '{until}': {item.Data}");
            }
        }
        throw new InvalidOperationException($"the stream ended without '{until}'");
    }
}
