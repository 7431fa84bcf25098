using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.Intake.Auth;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>
/// <c>retry: {infrastructure: N}</c> on the intake (real Postgres, MassTransit in memory): a lost runner's job
/// starts again only once that runner is destroyed, as a new attempt with its own token, log continuation and
/// timeline entries; a job whose steps failed, or that has no attempts left, is not retried.
/// </summary>
public sealed class InfrastructureRetryTests(IntakeFactory app) : IClassFixture<IntakeFactory>
{
    private static object WithRetries(int retries)
    {
        var body = JsonSerializer.SerializeToNode(Jobs.Valid(), JsonSerializerOptions.Web)!.AsObject();
        body["retry"] = new JsonObject { ["infrastructure"] = retries };
        body.Remove("secrets");
        body.Remove("caches");
        return body;
    }


    private static async Task<JsonElement> JobAsync(HttpClient ci, Guid id) => await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}");

    private Task<List<string>> RunJobsAsync(Guid id) => app.WithDbAsync(db => db.OutboxMessages.AsNoTracking()
        .Where(m => m.MessageType.Contains(nameof(RunJob)) && m.Body.Contains(id.ToString())).OrderBy(m => m.Id).Select(m => m.Body).ToListAsync());

    private static async Task<HttpResponseMessage> AppendAsync(HttpClient runner, long offset, string text) =>
        await runner.PostAsync($"{RunnerApiRoutes.Logs}?offset={offset}", new StringContent(text, Encoding.UTF8, "text/plain"));

    [Fact]
    public async Task A_lost_runner_is_replaced_once_destroyed_and_the_next_attempt_runs_as_a_job_of_its_own()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(ci, WithRetries(1));
        var now = DateTimeOffset.UtcNow;

        // Attempt 1 runs a step and writes some log, then its runner is lost.
        using var first = app.RunnerClient(id);
        Assert.Equal(HttpStatusCode.OK, (await first.GetAsync(RunnerApiRoutes.Job)).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await AppendAsync(first, 0, "attempt one\n")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await first.PostAsJsonAsync(RunnerApiRoutes.Events,
            new RunnerStepEvent(JobEventTypes.StepStarted, 0, "one", null, now), JsonSerializerOptions.Web)).StatusCode);
        await app.DeliverAsync(new RunnerStarted(id, "runner-a1", "local", now));
        await app.DeliverAsync(new RunnerFinished(id, "runner-a1", RunnerOutcome.Lost, null, "provisioner restarted", now.AddSeconds(1)));

        // Not failed, not yet queued again: the lost runner is not destroyed yet, and no second runner may exist beside it.
        var job = await JobAsync(ci, id);
        Assert.Equal("running", job.GetProperty("status").GetString());
        Assert.Equal(1, job.GetProperty("attempt").GetInt32());
        Assert.Equal(1, await app.CountEventsAsync(id, JobEventTypes.Retrying));
        Assert.Single(await RunJobsAsync(id));
        // The lost runner's token is revoked at once.
        Assert.Equal(HttpStatusCode.Unauthorized, (await AppendAsync(first, 12, "late\n")).StatusCode);

        await app.DeliverAsync(new RunnerDestroyed(id, "runner-a1", now.AddSeconds(2), Attempt: 1));
        job = await JobAsync(ci, id);
        Assert.Equal("queued", job.GetProperty("status").GetString());
        Assert.Equal(2, job.GetProperty("attempt").GetInt32());
        var runJobs = await RunJobsAsync(id);
        Assert.Equal(2, runJobs.Count);
        Assert.Equal(2, JsonDocument.Parse(runJobs[1]).RootElement.GetProperty("attempt").GetInt32());

        // Attempt 2: its own token and agent; its log continues the job's; its steps are entries of their own.
        using var second = app.RunnerClient(id, attempt: 2);
        Assert.Equal(HttpStatusCode.OK, (await second.GetAsync(RunnerApiRoutes.Job)).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await AppendAsync(second, 0, "attempt two\n")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await second.PostAsJsonAsync(RunnerApiRoutes.Events,
            new RunnerStepEvent(JobEventTypes.StepStarted, 0, "one", null, now.AddSeconds(3)), JsonSerializerOptions.Web)).StatusCode);
        Assert.Equal(2, await app.CountEventsAsync(id, JobEventTypes.StepStarted));
        // A token of attempt 1 that was somehow not revoked still cannot speak for attempt 2.
        using var stale = app.RunnerClient(id, attempt: 1);
        Assert.NotEqual(HttpStatusCode.OK, (await stale.GetAsync(RunnerApiRoutes.Job)).StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, (await second.PostAsJsonAsync(RunnerApiRoutes.Complete,
            new RunnerCompletion(true, 0, null), JsonSerializerOptions.Web)).StatusCode);
        job = await JobAsync(ci, id);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Equal(2, job.GetProperty("attempt").GetInt32());
        var log = await ci.GetStringAsync($"/api/v1/jobs/{id}/logs");
        Assert.Equal("attempt one\nattempt two\n", log);

        var types = (await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}/events")).GetProperty("events")
            .EnumerateArray().Select(e => e.GetProperty("type").GetString()!).ToArray();
        Assert.Equal(2, types.Count(t => t == JobEventTypes.Queued));
        Assert.Single(types, t => t == JobEventTypes.Succeeded);
        Assert.DoesNotContain(JobEventTypes.Failed, types);
    }

    [Fact]
    public async Task The_runners_destruction_reported_before_its_loss_starts_the_next_attempt_too()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(ci, WithRetries(2));
        var now = DateTimeOffset.UtcNow;
        // Separate queues: the destruction may be handled first.
        await app.DeliverAsync(new RunnerDestroyed(id, "runner-b1", now.AddSeconds(1)));
        Assert.Equal("queued", (await JobAsync(ci, id)).GetProperty("status").GetString());
        await app.DeliverAsync(new RunnerFinished(id, "runner-b1", RunnerOutcome.Lost, null, "node lost", now));
        var job = await JobAsync(ci, id);
        Assert.Equal("queued", job.GetProperty("status").GetString());
        Assert.Equal(2, job.GetProperty("attempt").GetInt32());
        Assert.Equal(2, (await RunJobsAsync(id)).Count);
    }

    [Fact]
    public async Task Only_a_lost_runner_is_retried_and_only_while_attempts_are_left()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var now = DateTimeOffset.UtcNow;

        // The job's own failure (the runner exited without a result) is not the infrastructure's.
        var exited = await Jobs.SubmitAsync(ci, WithRetries(3));
        await app.DeliverAsync(new RunnerFinished(exited, "runner-c1", RunnerOutcome.Exited, 1, null, now));
        await app.DeliverAsync(new RunnerDestroyed(exited, "runner-c1", now));
        Assert.Equal("failed", (await JobAsync(ci, exited)).GetProperty("status").GetString());
        Assert.Single(await RunJobsAsync(exited));

        // One retry allowed: the second loss decides the job.
        var twice = await Jobs.SubmitAsync(ci, WithRetries(1));
        await app.DeliverAsync(new RunnerFinished(twice, "runner-d1", RunnerOutcome.Lost, null, "gone", now));
        await app.DeliverAsync(new RunnerDestroyed(twice, "runner-d1", now));
        Assert.Equal(2, (await JobAsync(ci, twice)).GetProperty("attempt").GetInt32());
        // A late repeat of attempt 1's end (another message id, same runner) changes nothing.
        await app.DeliverAsync(new RunnerFinished(twice, "runner-d1", RunnerOutcome.Lost, null, "gone", now));
        Assert.Equal("queued", (await JobAsync(ci, twice)).GetProperty("status").GetString());
        await app.DeliverAsync(new RunnerFinished(twice, "runner-d2", RunnerOutcome.Lost, null, "gone again", now.AddSeconds(5), Attempt: 2));
        await app.DeliverAsync(new RunnerDestroyed(twice, "runner-d2", now.AddSeconds(6), Attempt: 2));
        var job = await JobAsync(ci, twice);
        Assert.Equal("failed", job.GetProperty("status").GetString());
        Assert.StartsWith("runner was lost: gone again", job.GetProperty("statusReason").GetString());
        Assert.Equal(2, (await RunJobsAsync(twice)).Count);

        // No retry asked for: a loss fails the job as before.
        var none = await Jobs.SubmitAsync(ci);
        await app.DeliverAsync(new RunnerFinished(none, "runner-e1", RunnerOutcome.Lost, null, "gone", now));
        Assert.Equal("failed", (await JobAsync(ci, none)).GetProperty("status").GetString());
        Assert.Equal(0, await app.CountEventsAsync(none, JobEventTypes.Retrying));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(4)]
    public async Task A_retry_count_out_of_range_is_refused_naming_the_field(int retries)
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit);
        using var response = await ci.PostAsJsonAsync("/api/v1/jobs", WithRetries(retries));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(problem.GetProperty("errors").TryGetProperty("retry.infrastructure", out _), problem.ToString());
    }
}
