using System.Diagnostics;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Messaging;
using EphemeralCI.Provisioner.Telemetry;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Trace;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Infrastructure;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>Concurrency limits: jobs beyond a limit wait (recorded, with the reason sent to the intake) and start in order.</summary>
[Collection(ProvisionerCollection.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class RunnerLimiterTests(ProvisionerFixture fx)
{
    private static RunJob Limited(Guid jobId) =>
        new(jobId, "default", ProvisionerFixture.LimitedRepository, "main", 60, DateTimeOffset.UtcNow);

    /// <summary>Waits for the job's first step; on failure says where its runner got stuck.</summary>
    private async Task WaitToRunAsync(Guid jobId, FakeJob job)
    {
        RunnerRecord? row = null;
        await ProvisionerFixture.WaitUntilAsync(async () =>
        {
            row = await fx.RunnerAsync(jobId);
            return job.Events.Any(e => e.Type == JobEventTypes.StepStarted);
        }, () => $"job {jobId} to run; RunJob consumed {fx.Consumed<RunJob>(jobId)}x; runner {row?.State} {row?.Outcome} {row?.Reason}; faults: {fx.Faults}; log:\n{job.Log}");
    }

    [Fact]
    public async Task Jobs_over_the_repository_limit_wait_with_a_reason_and_start_in_order_when_a_slot_frees()
    {
        var hold = "while [ ! -f /workspace/go ]; do sleep 0.05; done";
        var (a, b, c) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        var jobA = fx.Intake.Register(a, new StepSpec { Name = "hold", Run = hold });
        var jobB = fx.Intake.Register(b, new StepSpec { Name = "quick", Run = "echo b-ran" });
        var jobC = fx.Intake.Register(c, new StepSpec { Name = "quick", Run = "echo c-ran" });

        await fx.PublishAsync(Limited(a));
        await WaitToRunAsync(a, jobA);
        await fx.PublishAsync(Limited(b));
        await fx.WaitForStateAsync(b, RunnerState.Waiting);
        await fx.PublishAsync(Limited(c));
        await fx.WaitForStateAsync(c, RunnerState.Waiting);

        // Waiting means no runner at all: no process, no directory, and the intake is told why.
        Assert.Empty(SandboxProcesses.Of(b));
        Assert.False(Directory.Exists(Path.Combine(fx.WorkRoot, b.ToString())));
        var waiting = Assert.Single((await fx.SentAsync(b)).OfType<RunnerWaiting>());
        Assert.Equal($"waiting for a free runner: repository '{ProvisionerFixture.LimitedRepository}' is at its limit of 1 concurrent runner(s)", waiting.Reason);
        Assert.Single((await fx.SentAsync(c)).OfType<RunnerWaiting>());
        Assert.Equal(0, jobB.Fetches);

        await File.WriteAllTextAsync(Path.Combine(fx.WorkRoot, a.ToString(), "workspace", "go"), "");
        await fx.WaitForStateAsync(c, RunnerState.Destroyed);

        var (ra, rb, rc) = ((await fx.RunnerAsync(a))!, (await fx.RunnerAsync(b))!, (await fx.RunnerAsync(c))!);
        Assert.Equal(RunnerState.Destroyed, rb.State);
        // One at a time, in arrival order: B starts only after A is over, C only after B is over. (A slot frees
        // once the runner is killed and cleaned up, before the independent teardown check: RunnerTeardownTests.)
        Assert.True(rb.StartedAt >= ra.FinishedAt, $"B started {rb.StartedAt:O}, A finished {ra.FinishedAt:O}");
        Assert.True(rc.StartedAt >= rb.FinishedAt, $"C started {rc.StartedAt:O}, B finished {rb.FinishedAt:O}");
        Assert.Contains("b-ran", jobB.Log);
        Assert.Contains("c-ran", jobC.Log);
    }

    [Fact]
    public async Task A_waiting_job_holds_back_only_its_repository_and_once_cancelled_never_starts()
    {
        var (a, b) = (Guid.NewGuid(), Guid.NewGuid());
        var jobA = fx.Intake.Register(a, new StepSpec { Name = "hold", Run = "while [ ! -f /workspace/go ]; do sleep 0.05; done" });
        var jobB = fx.Intake.Register(b, new StepSpec { Name = "never", Run = "echo never" });
        await fx.PublishAsync(Limited(a));
        await WaitToRunAsync(a, jobA);
        await fx.PublishAsync(Limited(b));
        await fx.WaitForStateAsync(b, RunnerState.Waiting);

        // A full repository holds back only its own jobs: another repository's job runs meanwhile.
        var other = Guid.NewGuid();
        var otherJob = fx.Intake.Register(other, new StepSpec { Name = "quick", Run = "echo other-ran" });
        await fx.PublishAsync(fx.RunJob(other));
        await fx.WaitForStateAsync(other, RunnerState.Destroyed);
        Assert.Contains("other-ran", otherJob.Log);
        Assert.Empty((await fx.SentAsync(other)).OfType<RunnerWaiting>());

        await fx.PublishAsync(new CancelJob(b, DateTimeOffset.UtcNow));
        await fx.WaitForStateAsync(b, RunnerState.Destroyed);
        await File.WriteAllTextAsync(Path.Combine(fx.WorkRoot, a.ToString(), "workspace", "go"), "");
        await fx.WaitForStateAsync(a, RunnerState.Destroyed);

        var rb = (await fx.RunnerAsync(b))!;
        Assert.Equal(RunnerOutcome.Cancelled, rb.Outcome);
        Assert.Null(rb.StartedAt);
        Assert.Equal(0, jobB.Fetches);
        Assert.Empty((await fx.SentAsync(b)).OfType<RunnerStarted>());
    }

    private static readonly ActivitySource Submitter = new("EphemeralCI.IntegrationTests.Submitter");

    [Fact]
    public async Task A_job_that_waited_for_a_slot_stays_in_the_trace_of_its_RunJob_from_start_to_destroyed()
    {
        var spans = new List<Activity>();
        using var tracing = Sdk.CreateTracerProviderBuilder()
            .AddSource(Submitter.Name, "MassTransit", ProvisionerTelemetry.Name, OutboxTelemetry.Name).AddInMemoryExporter(spans).Build();
        var (a, b) = (Guid.NewGuid(), Guid.NewGuid());
        var jobA = fx.Intake.Register(a, new StepSpec { Name = "hold", Run = "while [ ! -f /workspace/go ]; do sleep 0.05; done" });
        var jobB = fx.Intake.Register(b, new StepSpec { Name = "quick", Run = "echo b-ran" });
        await fx.PublishAsync(Limited(a));
        await WaitToRunAsync(a, jobA);

        // B's RunJob is published in a trace (the intake's submit request, in the real system) and has to wait.
        ActivityTraceId trace;
        using (var submit = Submitter.StartActivity("submit job"))
        {
            trace = submit!.TraceId;
            await fx.PublishAsync(Limited(b));
        }
        await fx.WaitForStateAsync(b, RunnerState.Waiting);
        Assert.Contains(trace.ToHexString(), (await fx.RunnerAsync(b))!.TraceParent);

        // Started later by the limiter's background pump: everything it announces is still in B's trace.
        await File.WriteAllTextAsync(Path.Combine(fx.WorkRoot, a.ToString(), "workspace", "go"), "");
        await fx.WaitForStateAsync(b, RunnerState.Destroyed);
        Assert.Contains("b-ran", jobB.Log);
        await using var scope = fx.Host.Services.CreateAsyncScope();
        var rows = await scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>().OutboxMessages.AsNoTracking()
            .Where(m => m.Body.Contains(b.ToString())).OrderBy(m => m.Id).ToListAsync();
        var announced = rows.Select(r => (Type: r.MessageType.Split(',')[0].Split('.')[^1], r.TraceParent)).ToList();
        foreach (var type in new[] { nameof(RunnerWaiting), nameof(RunnerStarted), nameof(RunnerFinished), nameof(RunnerDestroyed) })
        {
            var row = Assert.Single(announced, r => r.Type == type);
            Assert.True(row.TraceParent?.Contains(trace.ToHexString()) == true, $"{type} staged outside the job's trace ({row.TraceParent ?? "none"})");
        }
        lock (spans) Assert.Contains(spans, s => s.TraceId == trace && s.DisplayName == "runner leaves the wait");
    }
}
