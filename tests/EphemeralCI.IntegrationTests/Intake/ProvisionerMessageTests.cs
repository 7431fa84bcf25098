using System.Net.Http.Json;
using System.Text.Json;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Auth;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>The provisioner's messages move the job and fill its timeline (MassTransit in-memory transport).</summary>
public sealed class ProvisionerMessageTests(IntakeFactory app) : IClassFixture<IntakeFactory>
{

    private async Task<JsonElement> JobAsync(HttpClient ci, Guid id) => await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}");

    [Fact]
    public async Task Whole_lifecycle_from_messages_with_a_runner_that_exits_without_reporting()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(ci);
        var now = DateTimeOffset.UtcNow;

        await app.DeliverAsync(new JobProvisioning(id, "local", now));
        Assert.Equal("provisioning", (await JobAsync(ci, id)).GetProperty("status").GetString());
        var hash = "sha256:" + new string('a', 64);
        await app.DeliverAsync(new RunnerStarted(id, "r-1", "local", now.AddSeconds(1), hash));
        Assert.Equal("running", (await JobAsync(ci, id)).GetProperty("status").GetString());
        Assert.Equal(hash, (await JobAsync(ci, id)).GetProperty("runnerTemplateHash").GetString());
        // A late JobProvisioning must not pull the job back.
        await app.DeliverAsync(new JobProvisioning(id, "local", now.AddSeconds(2)));
        Assert.Equal("running", (await JobAsync(ci, id)).GetProperty("status").GetString());

        await app.DeliverAsync(new RunnerFinished(id, "r-1", RunnerOutcome.Exited, 137, null, now.AddSeconds(3)));
        var job = await JobAsync(ci, id);
        Assert.Equal("failed", job.GetProperty("status").GetString());
        Assert.Equal("runner exited with code 137 before reporting a result", job.GetProperty("statusReason").GetString());

        // Terminal stays terminal; the runner's end is on the timeline once (one entry per runner and event type).
        await app.DeliverAsync(new RunnerFinished(id, "r-1", RunnerOutcome.TimedOut, null, null, now.AddSeconds(4)));
        await app.DeliverAsync(new RunnerDestroyed(id, "r-1", now.AddSeconds(5)));
        Assert.Equal("failed", (await JobAsync(ci, id)).GetProperty("status").GetString());

        var types = (await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}/events")).GetProperty("events")
            .EnumerateArray().Select(e => e.GetProperty("type").GetString()!).ToArray();
        Assert.Equal(
            ["job.queued", "job.provisioning", "runner.started", "job.provisioning", "runner.finished", "job.failed", "runner.destroyed"],
            types);
    }

    [Theory]
    [InlineData(RunnerOutcome.TimedOut, "timed_out")]
    [InlineData(RunnerOutcome.Cancelled, "cancelled")]
    [InlineData(RunnerOutcome.FailedToStart, "failed")]
    [InlineData(RunnerOutcome.Lost, "failed")]
    [InlineData(RunnerOutcome.LimitExceeded, "failed")]
    public async Task Runner_outcome_decides_the_terminal_state(RunnerOutcome outcome, string expected)
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(ci);
        await app.DeliverAsync(new RunnerFinished(id, "r-x", outcome, null, "node went away", DateTimeOffset.UtcNow));
        var job = await JobAsync(ci, id);
        Assert.Equal(expected, job.GetProperty("status").GetString());
        Assert.Equal(1, await app.CountEventsAsync(id, JobEventTypes.ForTerminal(Enum.Parse<JobStatus>(expected.Replace("_", ""), ignoreCase: true))));
    }

    [Fact]
    public async Task The_same_message_delivered_twice_records_one_event()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit);
        var id = await Jobs.SubmitAsync(ci);
        var messageId = Guid.NewGuid();
        var message = new RunnerStarted(id, "r-2", "local", DateTimeOffset.UtcNow);
        await app.DeliverAsync(message, messageId);
        await app.DeliverAsync(message, messageId);
        Assert.Equal(1, await app.CountEventsAsync(id, JobEventTypes.RunnerStarted));
    }

    [Fact]
    public async Task A_runners_end_announced_again_under_new_message_ids_is_recorded_once()
    {
        // As a provisioner before the fix re-announced it when the intake asked again after a restart.
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit);
        var id = await Jobs.SubmitAsync(ci);
        var now = DateTimeOffset.UtcNow;
        await app.DeliverAsync(new RunnerStarted(id, "r-3", "local", now));
        await app.DeliverAsync(new RunnerStarted(id, "r-3", "local", now));
        await app.DeliverAsync(new RunnerFinished(id, "r-3", RunnerOutcome.Lost, null, "provisioner restarted; runner lost", now.AddSeconds(1)));
        await app.DeliverAsync(new RunnerFinished(id, "r-3", RunnerOutcome.Lost, null, "provisioner restarted; runner lost", now.AddSeconds(2)));
        await app.DeliverAsync(new RunnerDestroyed(id, "r-3", now.AddSeconds(3)));
        await app.DeliverAsync(new RunnerDestroyed(id, "r-3", now.AddSeconds(4)));

        Assert.Equal(1, await app.CountEventsAsync(id, JobEventTypes.RunnerStarted));
        Assert.Equal(1, await app.CountEventsAsync(id, JobEventTypes.RunnerFinished));
        Assert.Equal(1, await app.CountEventsAsync(id, JobEventTypes.RunnerDestroyed));
        Assert.Equal(1, await app.CountEventsAsync(id, JobEventTypes.Failed));
    }

    [Fact]
    public async Task A_waiting_job_stays_queued_and_its_timeline_says_why()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(ci);
        const string reason = "waiting for a free runner: backend 'local' is at its limit of 2 concurrent runner(s)";

        await app.DeliverAsync(new RunnerWaiting(id, reason, DateTimeOffset.UtcNow));

        Assert.Equal("queued", (await JobAsync(ci, id)).GetProperty("status").GetString());
        var waiting = (await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}/events")).GetProperty("events")
            .EnumerateArray().Single(e => e.GetProperty("type").GetString() == JobEventTypes.Waiting);
        Assert.Equal(reason, waiting.GetProperty("message").GetString());
    }
}
