using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// Held runners on the all-in-one server with real sandboxes: a session keeps one runner for a sequence of commands
/// (state carries over), runs one command at a time, and its runner is destroyed when it is deleted or sits idle.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class SessionTests(ServerFixture fx)
{
    [Fact]
    public async Task Session_runs_commands_in_one_runner_one_at_a_time_and_delete_destroys_it()
    {
        var id = await OpenAsync(fx.Intake, idleTimeoutSeconds: 120);

        var first = await SessionClient.RunAsync(fx.Intake, id, "echo one > state.txt && echo \"first in $(pwd)\"");
        Assert.True(first.ExitCode == 0, $"{first.End}\n{first.Output}");
        Assert.Contains("first in /workspace", first.Output);

        // The second command sees the first one's file; while it runs, a third is refused.
        var second = SessionClient.RunAsync(fx.Intake, id, "sleep 2; echo \"state: $(cat state.txt)\"; exit 3");
        using (var busy = await PostCommandUntilBusyAsync(id))
        {
            Assert.Equal(HttpStatusCode.Conflict, busy.StatusCode);
        }
        var result = await second;
        Assert.Equal(3, result.ExitCode);
        Assert.Contains("state: one", result.Output);
        Assert.DoesNotContain("first in", result.Output); // each command's stream starts where the log stood

        var session = await fx.Intake.GetFromJsonAsync<JsonElement>($"/api/v1/sessions/{id}");
        Assert.Equal(2, session.GetProperty("commands").GetInt32());
        Assert.Equal("running", session.GetProperty("status").GetString());

        // Deleted while the agent waits for the next command: its wait ends with "the job is over", which is no failure to report.
        var mark = fx.OutputMark;
        using var deleted = await fx.Intake.DeleteAsync($"/api/v1/sessions/{id}");
        Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        Assert.Equal("cancelled", (await fx.Intake.WaitForTerminalAsync(id)).GetProperty("status").GetString());
        await fx.WaitForVerifiedRunnerEndAsync(id);
        await RunnerTraces.AssertGoneAsync(id, fx.RunnerWorkRoot);
        Assert.DoesNotContain(fx.OutputSince(mark), line => line.Contains("could not report the job") || line.Contains("log upload failed"));

        using var after = await PostCommandAsync(fx.Intake, id, "echo too late");
        Assert.Equal(HttpStatusCode.Conflict, after.StatusCode);
    }

    [Fact]
    public async Task Idle_session_ends_by_itself_with_its_last_commands_result_and_its_runner_is_destroyed()
    {
        var id = await OpenAsync(fx.Intake, idleTimeoutSeconds: 5);
        var run = await SessionClient.RunAsync(fx.Intake, id, "echo alive");
        Assert.True(run.ExitCode == 0, $"{run.End}\n{run.Output}");

        var ended = await fx.Intake.WaitForTerminalAsync(id, TimeSpan.FromSeconds(60));
        Assert.Equal("succeeded", ended.GetProperty("status").GetString());
        Assert.Contains("idle for 5 s", await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/logs"));
        await fx.WaitForVerifiedRunnerEndAsync(id);
        await RunnerTraces.AssertGoneAsync(id, fx.RunnerWorkRoot);
    }

    [Fact]
    public async Task A_key_without_the_repository_sees_no_session_and_bad_input_names_the_field()
    {
        var id = await OpenAsync(fx.Intake, idleTimeoutSeconds: 30);
        using var other = await KeyAsync(["acme/other"]);
        using (var get = await other.GetAsync($"/api/v1/sessions/{id}")) Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
        using (var command = await PostCommandAsync(other, id, "echo intruder")) Assert.Equal(HttpStatusCode.NotFound, command.StatusCode);
        using (var delete = await other.DeleteAsync($"/api/v1/sessions/{id}")) Assert.Equal(HttpStatusCode.NotFound, delete.StatusCode);

        // A key for the same repository but another ref may see the session, not drive it: commands run with the session's identity.
        using var featureKey = await KeyAsync(["acme/widgets"], ["refs/heads/feature/*"]);
        using (var command = await PostCommandAsync(featureKey, id, "echo intruder")) Assert.Equal(HttpStatusCode.NotFound, command.StatusCode);

        await AssertFieldAsync(await PostCommandAsync(fx.Intake, id, ""), "run");
        await AssertFieldAsync(await fx.Intake.PostAsJsonAsync("/api/v1/sessions", Body(1)), "session.idleTimeoutSeconds");
        await AssertFieldAsync(await fx.Intake.PostAsJsonAsync("/api/v1/sessions",
            new { repository = "acme/widgets", @ref = "refs/heads/main", commitSha = Sha, runnerTemplate = "default", steps = new[] { new { run = "echo" } } }), "steps");
        await AssertFieldAsync(await fx.Intake.PostAsJsonAsync("/api/v1/jobs", Body(30)), "session");

        using var deleted = await fx.Intake.DeleteAsync($"/api/v1/sessions/{id}");
        Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
    }

    private const string Sha = "0123456789abcdef0123456789abcdef01234567";

    private static object Body(int idleTimeoutSeconds) => new
    {
        repository = "acme/widgets",
        @ref = "refs/heads/main",
        commitSha = Sha,
        runnerTemplate = "default",
        timeoutSeconds = 300,
        session = new { idleTimeoutSeconds },
    };

    private static async Task<Guid> OpenAsync(HttpClient intake, int idleTimeoutSeconds)
    {
        using var response = await intake.PostAsJsonAsync("/api/v1/sessions", Body(idleTimeoutSeconds));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"open answered {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetGuid();
    }

    private static Task<HttpResponseMessage> PostCommandAsync(HttpClient client, Guid id, string run) =>
        client.PostAsJsonAsync($"/api/v1/sessions/{id}/commands", new { run });

    /// <summary>Posts until the session says a command is running (the second command may not be accepted yet at the first try).</summary>
    private async Task<HttpResponseMessage> PostCommandUntilBusyAsync(Guid id)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var events = await fx.Intake.EventTypesAsync(id);
            if (events.Count(t => t == "step.started") >= 2 || DateTime.UtcNow > deadline) return await PostCommandAsync(fx.Intake, id, "echo third");
            await Task.Delay(100);
        }
    }

    private static async Task AssertFieldAsync(HttpResponseMessage response, string field)
    {
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"expected 400 naming {field}, got {(int)response.StatusCode}: {body}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.True(JsonDocument.Parse(body).RootElement.GetProperty("errors").TryGetProperty(field, out _), body);
        }
    }

    private async Task<HttpClient> KeyAsync(string[] repositories, string[]? refs = null)
    {
        using var created = await fx.Intake.PostAsJsonAsync("/api/v1/api-keys", new
        {
            name = "e2e-session-" + Guid.NewGuid().ToString("N")[..6],
            scopes = new[] { "submit", "read" },
            repositories,
            refs = refs ?? ["refs/heads/**"],
        });
        var body = await created.Content.ReadAsStringAsync();
        Assert.True(created.IsSuccessStatusCode, $"creating a key answered {(int)created.StatusCode}: {body}");
        var client = new HttpClient { BaseAddress = fx.Intake.BaseAddress, Timeout = fx.Intake.Timeout };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", JsonDocument.Parse(body).RootElement.GetProperty("key").GetString());
        return client;
    }
}

/// <summary>Runs one command in a session and reads its server-sent events to the end.</summary>
public static class SessionClient
{
    public sealed record CommandResult(int? ExitCode, string Output, string? End);

    public static async Task<CommandResult> RunAsync(HttpClient intake, Guid id, string run)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/sessions/{id}/commands") { Content = JsonContent.Create(new { run }) };
        using var response = await intake.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (!response.IsSuccessStatusCode) Assert.Fail($"command answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        var output = new StringBuilder();
        await foreach (var item in SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync())
        {
            switch (item.EventType)
            {
                case "log": output.Append(item.Data); break;
                case "exit": return new(JsonDocument.Parse(item.Data).RootElement.GetProperty("exitCode").GetInt32(), output.ToString(), null);
                case "end": return new(null, output.ToString(), item.Data);
            }
        }
        return new(null, output.ToString(), "stream ended without an exit event");
    }
}
