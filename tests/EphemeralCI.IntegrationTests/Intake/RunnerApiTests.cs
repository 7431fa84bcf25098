using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.Intake.Auth;
using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>The runner agent's side: job token auth, spec, logs (full and live), steps, result.</summary>
public sealed class RunnerApiTests(IntakeFactory app) : IClassFixture<IntakeFactory>
{
    private static StringContent Text(string text) => new(text, Encoding.UTF8, "text/plain");

    [Fact]
    public async Task Runner_fetches_its_job_reports_steps_and_logs_and_completes()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(ci);
        using var runner = app.RunnerClient(id);

        var job = await runner.GetFromJsonAsync<RunnerJob>(RunnerApiRoutes.Job);
        Assert.Equal(id, job!.JobId);
        Assert.Equal(2, job.Spec.Steps!.Count);
        Assert.Equal(600, job.Spec.TimeoutSeconds); // resolved from the default template
        Assert.Equal("running", (await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}")).GetProperty("status").GetString());

        Assert.Equal(HttpStatusCode.NoContent, (await runner.PostAsJsonAsync(RunnerApiRoutes.Events,
            new RunnerStepEvent(JobEventTypes.StepStarted, 0, "one", null, DateTimeOffset.UtcNow))).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await runner.PostAsync($"{RunnerApiRoutes.Logs}?offset=0", Text("one\n"))).StatusCode);
        // A retried chunk is acknowledged and not stored twice; a gap is refused with the right offset.
        Assert.Equal(HttpStatusCode.NoContent, (await runner.PostAsync($"{RunnerApiRoutes.Logs}?offset=0", Text("one\n"))).StatusCode);
        using var gap = await runner.PostAsync($"{RunnerApiRoutes.Logs}?offset=100", Text("x"));
        Assert.Equal(HttpStatusCode.Conflict, gap.StatusCode);
        Assert.Equal(4, (await gap.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("expectedOffset").GetInt64());
        Assert.Equal(HttpStatusCode.NoContent, (await runner.PostAsync($"{RunnerApiRoutes.Logs}?offset=4", Text("two ✓\n"))).StatusCode);
        var finished = new RunnerStepEvent(JobEventTypes.StepFinished, 0, "one", 0, DateTimeOffset.UtcNow);
        Assert.Equal(HttpStatusCode.NoContent, (await runner.PostAsJsonAsync(RunnerApiRoutes.Events, finished)).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await runner.PostAsJsonAsync(RunnerApiRoutes.Events, finished)).StatusCode); // retry
        using var badStep = await runner.PostAsJsonAsync(RunnerApiRoutes.Events, new RunnerStepEvent("step.exploded", 9, "x", null, DateTimeOffset.UtcNow));
        Assert.Equal(HttpStatusCode.BadRequest, badStep.StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, (await runner.PostAsJsonAsync(RunnerApiRoutes.Complete, new RunnerCompletion(false, 3, 1))).StatusCode);
        // The first result stands.
        Assert.Equal(HttpStatusCode.NoContent, (await runner.PostAsJsonAsync(RunnerApiRoutes.Complete, new RunnerCompletion(true, 0, null))).StatusCode);

        var done = await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}");
        Assert.Equal("failed", done.GetProperty("status").GetString());
        Assert.Equal(3, done.GetProperty("exitCode").GetInt32());
        Assert.Equal("one\ntwo ✓\n", await ci.GetStringAsync($"/api/v1/jobs/{id}/logs"));
        var types = (await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}/events")).GetProperty("events")
            .EnumerateArray().Select(e => e.GetProperty("type").GetString()!).ToArray();
        Assert.Equal(["job.queued", "step.started", "step.finished", "job.failed"], types);

        // The log is closed once the job has finished.
        Assert.Equal(HttpStatusCode.Conflict, (await runner.PostAsync($"{RunnerApiRoutes.Logs}?offset=12", Text("late"))).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await runner.GetAsync(RunnerApiRoutes.Job)).StatusCode);
    }

    [Fact]
    public async Task The_agent_gets_the_trace_context_of_the_jobs_submission_to_report_in_its_trace()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        // The CI system's own trace (W3C traceparent on the submit request): the job's trace continues it.
        var trace = System.Diagnostics.ActivityTraceId.CreateRandom().ToHexString();
        ci.DefaultRequestHeaders.Add("traceparent", $"00-{trace}-{System.Diagnostics.ActivitySpanId.CreateRandom().ToHexString()}-01");
        var id = await Jobs.SubmitAsync(ci);
        using var runner = app.RunnerClient(id);

        var job = await runner.GetFromJsonAsync<RunnerJob>(RunnerApiRoutes.Job);
        Assert.NotNull(job!.TraceParent);
        Assert.StartsWith($"00-{trace}-", job.TraceParent);
        Assert.Equal(55, job.TraceParent.Length);
    }

    [Fact]
    public async Task Only_the_agent_that_fetched_the_job_may_report_for_it_whoever_else_holds_the_token()
    {
        // Job code that got hold of the job token (issue 14, item 7) has the token but not the agent's key.
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(ci);
        using var agent = app.RunnerClient(id);
        using var thief = app.RunnerClient(id);
        using var bare = app.RunnerClient(id);
        bare.DefaultRequestHeaders.Remove(RunnerApiHeaders.AgentKey);

        // Before the agent fetched the job, nobody reports for it.
        Assert.Equal(HttpStatusCode.Conflict, (await thief.PostAsJsonAsync(RunnerApiRoutes.Complete, new RunnerCompletion(true, 0, null))).StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await agent.GetAsync(RunnerApiRoutes.Job)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await agent.GetAsync(RunnerApiRoutes.Job)).StatusCode); // the agent's own retry
        using (var second = await thief.GetAsync(RunnerApiRoutes.Job)) Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);

        using (var forged = await thief.PostAsJsonAsync(RunnerApiRoutes.Complete, new RunnerCompletion(true, 0, null)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, forged.StatusCode);
            var problem = await forged.Content.ReadFromJsonAsync<JsonElement>();
            Assert.True(problem.GetProperty("errors").TryGetProperty(RunnerApiHeaders.AgentKey, out _), problem.ToString());
        }
        Assert.Equal(HttpStatusCode.Forbidden, (await bare.PostAsJsonAsync(RunnerApiRoutes.Complete, new RunnerCompletion(true, 0, null))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await thief.PostAsync($"{RunnerApiRoutes.Logs}?offset=0", Text("all green\n"))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await thief.PostAsJsonAsync(RunnerApiRoutes.Events,
            new RunnerStepEvent(JobEventTypes.StepFinished, 0, "one", 0, DateTimeOffset.UtcNow))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await thief.PostAsJsonAsync(RunnerApiRoutes.CacheEvents,
            new RunnerCacheEvent("save", "k", "saved", null, 1, 1, null, DateTimeOffset.UtcNow))).StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, (await agent.PostAsJsonAsync(RunnerApiRoutes.Complete, new RunnerCompletion(false, 2, 0))).StatusCode);
        var done = await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}");
        Assert.Equal("failed", done.GetProperty("status").GetString());
        Assert.Equal("", await ci.GetStringAsync($"/api/v1/jobs/{id}/logs"));
    }

    [Fact]
    public async Task Cache_outcomes_land_in_the_timeline_once_each_and_bad_ones_are_refused_by_field()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(ci);
        using var runner = app.RunnerClient(id);
        Assert.NotNull(await runner.GetFromJsonAsync<RunnerJob>(RunnerApiRoutes.Job));

        var hit = new RunnerCacheEvent("restore", "npm-v1-abc", "hit", "npm-v1-", 123456, 42, null, DateTimeOffset.UtcNow);
        Assert.Equal(HttpStatusCode.NoContent, (await runner.PostAsJsonAsync(RunnerApiRoutes.CacheEvents, hit)).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await runner.PostAsJsonAsync(RunnerApiRoutes.CacheEvents, hit)).StatusCode); // retry
        var saved = new RunnerCacheEvent("save", "npm-v1-abc", "skipped (already cached)", null, 0, 3, null, DateTimeOffset.UtcNow);
        Assert.Equal(HttpStatusCode.NoContent, (await runner.PostAsJsonAsync(RunnerApiRoutes.CacheEvents, saved)).StatusCode);

        using var bad = await runner.PostAsJsonAsync(RunnerApiRoutes.CacheEvents, new RunnerCacheEvent("steal", new string('k', 513), "", null, -1, 0, null, DateTimeOffset.UtcNow));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var fields = (await bad.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors");
        foreach (var field in new[] { "operation", "key", "result", "bytes" }) Assert.True(fields.TryGetProperty(field, out _), $"no error for {field}");

        var events = (await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}/events")).GetProperty("events").EnumerateArray().ToArray();
        var restore = Assert.Single(events, e => e.GetProperty("type").GetString() == JobEventTypes.CacheRestore);
        Assert.Equal("hit", restore.GetProperty("data").GetProperty("result").GetString());
        Assert.Equal(123456, restore.GetProperty("data").GetProperty("bytes").GetInt64());
        Assert.Single(events, e => e.GetProperty("type").GetString() == JobEventTypes.CacheSave);
    }

    [Fact]
    public async Task A_token_for_job_A_cannot_touch_job_B_and_api_keys_do_not_open_the_runner_api()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var jobA = await Jobs.SubmitAsync(ci);
        var jobB = await Jobs.SubmitAsync(ci);
        using var runnerA = app.RunnerClient(jobA);

        // The job comes only from the token: a job id in the request is ignored.
        var fetched = await runnerA.GetFromJsonAsync<RunnerJob>($"{RunnerApiRoutes.Job}?jobId={jobB}");
        Assert.Equal(jobA, fetched!.JobId);
        await runnerA.PostAsJsonAsync($"{RunnerApiRoutes.Complete}?jobId={jobB}", new RunnerCompletion(true, 0, null));
        Assert.Equal("queued", (await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{jobB}")).GetProperty("status").GetString());
        Assert.Equal("succeeded", (await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{jobA}")).GetProperty("status").GetString());

        // A token minted for other coordinates is refused.
        using var wrongRepo = app.RunnerClient(jobB, repository: "evil/other");
        Assert.Equal(HttpStatusCode.NotFound, (await wrongRepo.GetAsync(RunnerApiRoutes.Job)).StatusCode);

        Assert.Equal(HttpStatusCode.Unauthorized, (await ci.GetAsync(RunnerApiRoutes.Job)).StatusCode);
        using var anonymous = app.CreateClient();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync(RunnerApiRoutes.Job)).StatusCode);
        // And a job token does not open the CI API.
        using var runnerB = app.RunnerClient(jobB);
        Assert.Equal(HttpStatusCode.Unauthorized, (await runnerB.GetAsync($"/api/v1/jobs/{jobB}")).StatusCode);
    }

    [Fact]
    public async Task Following_logs_streams_stored_chunks_then_live_ones_and_ends_with_the_final_status()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(ci);
        using var runner = app.RunnerClient(id);
        (await runner.GetAsync(RunnerApiRoutes.Job)).EnsureSuccessStatusCode();
        (await runner.PostAsync($"{RunnerApiRoutes.Logs}?offset=0", Text("before connect\n"))).EnsureSuccessStatusCode();

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var response = await ci.GetAsync($"/api/v1/jobs/{id}/logs?follow=true", HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(timeout.Token));

        Assert.Equal("before connect", (await NextEventAsync(reader, timeout.Token)).Data);

        // Posted after the client connected: must arrive live.
        (await runner.PostAsync($"{RunnerApiRoutes.Logs}?offset=15", Text("after connect\n"))).EnsureSuccessStatusCode();
        var live = await NextEventAsync(reader, timeout.Token);
        Assert.Equal(("log", "after connect"), (live.Type, live.Data));

        (await runner.PostAsJsonAsync(RunnerApiRoutes.Complete, new RunnerCompletion(true, 0, null))).EnsureSuccessStatusCode();
        var end = await NextEventAsync(reader, timeout.Token);
        Assert.Equal("end", end.Type);
        var final = JsonDocument.Parse(end.Data).RootElement;
        Assert.Equal("succeeded", final.GetProperty("status").GetString());
        Assert.Equal(0, final.GetProperty("exitCode").GetInt32());
        Assert.Null(await reader.ReadLineAsync(timeout.Token)); // the stream closes after "end"
    }

    /// <summary>Reads one server-sent event (event type and data lines joined by newlines; trailing newline trimmed).</summary>
    private static async Task<(string Type, string Data)> NextEventAsync(StreamReader reader, CancellationToken ct)
    {
        string type = "message";
        var data = new List<string>();
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Count == 0) continue;
                return (type, string.Join('\n', data).TrimEnd('\n'));
            }
            if (line.StartsWith("event:", StringComparison.Ordinal)) type = line[6..].Trim();
            else if (line.StartsWith("data:", StringComparison.Ordinal)) data.Add(line.Length > 5 && line[5] == ' ' ? line[6..] : line[5..]);
        }
        throw new EndOfStreamException("the event stream ended before the next event");
    }
}

/// <summary>A job's stored log is capped; the rest is dropped with a note and offsets still advance.</summary>
public sealed class RunnerLogCapTests(SmallLogCapIntakeFactory app) : IClassFixture<SmallLogCapIntakeFactory>
{
    [Fact]
    public async Task Log_beyond_the_cap_is_truncated_with_a_note_and_later_chunks_are_acknowledged()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(ci);
        using var runner = app.RunnerClient(id);
        (await runner.GetAsync(RunnerApiRoutes.Job)).EnsureSuccessStatusCode();
        var first = new string('a', 50);
        var second = new string('b', 50);
        (await runner.PostAsync($"{RunnerApiRoutes.Logs}?offset=0", new StringContent(first))).EnsureSuccessStatusCode();
        (await runner.PostAsync($"{RunnerApiRoutes.Logs}?offset=50", new StringContent(second))).EnsureSuccessStatusCode();
        (await runner.PostAsync($"{RunnerApiRoutes.Logs}?offset=100", new StringContent("dropped"))).EnsureSuccessStatusCode();

        var log = await ci.GetStringAsync($"/api/v1/jobs/{id}/logs");
        Assert.StartsWith(first + new string('b', 14), log);
        Assert.Contains("log truncated", log);
        Assert.DoesNotContain("dropped", log);
    }
}
