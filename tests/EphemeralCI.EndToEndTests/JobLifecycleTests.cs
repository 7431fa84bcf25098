using System.Net;
using System.Net.Http.Json;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// A CI system posts jobs to the real system (AppHost, real Postgres/Redis/RabbitMQ, bubblewrap
/// runners) and watches them succeed, fail, time out and get cancelled, each in a brand-new runner
/// that is gone afterwards.
/// </summary>
public abstract class JobLifecycleTests(IEphemeralCISystem fx)
{
    [Fact]
    public async Task Two_step_job_succeeds_with_both_outputs_a_complete_timeline_and_no_trace_left()
    {
        var id = await fx.Intake.SubmitAsync(JobClient.Job("two steps", null,
            ("greet", "echo \"$GREETING from step one\""),
            ("write", "echo built > artifact.txt && cat artifact.txt && echo \"second step in $(pwd)\"")));

        var job = await fx.Intake.WaitForTerminalAsync(id);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());

        var logs = await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/logs");
        Assert.Contains("hello from step one", logs);
        Assert.Contains("built", logs);
        Assert.Contains("second step in /workspace", logs);

        await fx.WaitForVerifiedRunnerEndAsync(id);
        var timeline = await fx.Intake.EventTypesAsync(id);
        string[] expectedInOrder =
        [
            "job.queued", "job.provisioning", "runner.started",
            "step.started", "step.finished", "step.started", "step.finished",
            "job.succeeded", "runner.destroyed",
        ];
        Assert.Equal(expectedInOrder, timeline.Where(expectedInOrder.Contains).ToArray());

        await RunnerTraces.AssertGoneAsync(id, fx.RunnerWorkRoot);
    }

    [Fact]
    public async Task Failing_step_fails_the_job_and_skips_the_rest()
    {
        var id = await fx.Intake.SubmitAsync(JobClient.Job("fails", null,
            ("ok", "echo first"),
            ("boom", "echo about to fail; exit 3"),
            ("never", "echo this must not run")));

        var job = await fx.Intake.WaitForTerminalAsync(id);
        Assert.Equal("failed", job.GetProperty("status").GetString());
        Assert.Equal(3, job.GetProperty("exitCode").GetInt32());

        var logs = await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/logs");
        Assert.Contains("about to fail", logs);
        Assert.DoesNotContain("this must not run", logs);

        await fx.WaitForVerifiedRunnerEndAsync(id);
        Assert.Equal(2, (await fx.Intake.EventTypesAsync(id)).Count(t => t == "step.started"));
        await RunnerTraces.AssertGoneAsync(id, fx.RunnerWorkRoot);
    }

    [Fact]
    public async Task Job_past_its_timeout_is_timed_out_and_its_runner_destroyed()
    {
        var id = await fx.Intake.SubmitAsync(JobClient.Job("too slow", 3,
            ("sleep", "echo sleeping; sleep 120")));

        var job = await fx.Intake.WaitForTerminalAsync(id);
        Assert.Equal("timed_out", job.GetProperty("status").GetString());

        await fx.WaitForVerifiedRunnerEndAsync(id);
        await RunnerTraces.AssertGoneAsync(id, fx.RunnerWorkRoot);
    }

    [Fact]
    public async Task Cancelled_job_stops_at_once_and_its_runner_is_destroyed()
    {
        var id = await fx.Intake.SubmitAsync(JobClient.Job("to cancel", null,
            ("wait", "echo waiting; sleep 120"),
            ("never", "echo this must not run")));
        await fx.Intake.WaitForEventAsync(id, "step.started");

        using var cancel = await fx.Intake.PostAsync($"/api/v1/jobs/{id}/cancel", null);
        Assert.True(cancel.IsSuccessStatusCode, $"cancel answered {(int)cancel.StatusCode}");

        var job = await fx.Intake.WaitForTerminalAsync(id);
        Assert.Equal("cancelled", job.GetProperty("status").GetString());
        await fx.WaitForVerifiedRunnerEndAsync(id);
        await RunnerTraces.AssertGoneAsync(id, fx.RunnerWorkRoot);
    }

    [Fact]
    public async Task Invalid_job_is_refused_with_problem_details_and_nothing_runs()
    {
        using var response = await fx.Intake.PostAsJsonAsync("/api/v1/jobs", new { name = "no steps", repository = "acme/widgets" });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }
}

[Collection(AppHostCollection.Name)]
public sealed class JobLifecycleTestsOnAppHost(AppHostFixture fx) : JobLifecycleTests(fx);

[Collection(ServerCollection.Name)]
public sealed class JobLifecycleTestsOnServer(ServerFixture fx) : JobLifecycleTests(fx);
