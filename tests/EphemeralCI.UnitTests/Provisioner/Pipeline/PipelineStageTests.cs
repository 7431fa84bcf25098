using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Scheduling;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner.Pipeline;

/// <summary>What reached a fake next stage.</summary>
public sealed class RecordingStage : IRunnerAdmission, IRunnerStarter
{
    public List<RunnerRequest> Requests { get; } = [];
    public Task AdmitAsync(RunnerRequest request, CancellationToken ct) { Requests.Add(request); return Task.CompletedTask; }
    public Task StartAsync(RunnerRequest request, CancellationToken ct) { Requests.Add(request); return Task.CompletedTask; }
}

/// <summary>The deduplicator against a fake admission stage: never two runners for one job.</summary>
public sealed class RunnerDeduplicatorTests : IAsyncDisposable
{
    private readonly RecordingStage _next = new();
    private readonly PipelineHarness _h;

    public RunnerDeduplicatorTests() => _h = new PipelineHarness(configure: s => s.AddSingleton<IRunnerAdmission>(_next).AddScoped<RunnerDeduplicator>());

    public ValueTask DisposeAsync() => _h.DisposeAsync();

    private async Task HandleAsync(RunJob job)
    {
        await using var scope = _h.Scope();
        await _h.Get<RunnerDeduplicator>(scope).HandleAsync(job, CancellationToken.None);
    }

    [Fact]
    public async Task A_new_job_goes_on_as_a_claim_it_does_not_write_itself()
    {
        var job = PipelineHarness.Job();
        await HandleAsync(job);

        var request = Assert.Single(_next.Requests);
        Assert.False(request.Resumed);
        Assert.Equal((job.JobId, RunnerState.Provisioning, PipelineHarness.Instance, "acme/app"),
            (request.Runner.JobId, request.Runner.State, request.Runner.Instance, request.Runner.Repository));
        Assert.Empty(await _h.RunnersAsync()); // the admission stage writes it
    }

    [Theory]
    [InlineData(RunnerState.Waiting)]
    [InlineData(RunnerState.Running)]
    [InlineData(RunnerState.Tombstone)]
    public async Task A_job_that_has_a_runner_row_goes_no_further(RunnerState state)
    {
        var job = PipelineHarness.Job();
        await _h.AddAsync(PipelineHarness.Row(job, state));
        await HandleAsync(job);
        Assert.Empty(_next.Requests);
    }

    [Fact]
    public async Task Another_instances_provisioning_row_is_its_business()
    {
        var job = PipelineHarness.Job();
        await _h.AddAsync(PipelineHarness.Row(job, RunnerState.Provisioning, instance: "elsewhere"));
        await HandleAsync(job);
        Assert.Empty(_next.Requests);
    }

    [Fact]
    public async Task A_start_cut_short_goes_on_resumed()
    {
        var job = PipelineHarness.Job();
        await _h.AddAsync(PipelineHarness.Row(job, RunnerState.Provisioning));
        await HandleAsync(job);
        Assert.True(Assert.Single(_next.Requests).Resumed);
    }

    [Fact]
    public async Task A_finished_runners_end_is_announced_again_under_its_first_ids_once_per_redelivery()
    {
        var job = PipelineHarness.Job();
        var row = PipelineHarness.Row(job, RunnerState.Provisioning);
        row.Start(1, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddMinutes(1));
        row.Finish(RunnerOutcome.Exited, 0, null, DateTimeOffset.UtcNow);
        await _h.AddAsync(row);

        await HandleAsync(job);
        await HandleAsync(job); // still pending: not staged a second time

        Assert.Empty(_next.Requests);
        Assert.Equal(["RunnerFinished"], await _h.OutboxTypesAsync(RunnerMessageIds.Finished(row.RunnerId)));
    }
}

/// <summary>The limiter's admission against a fake start stage.</summary>
public sealed class RunnerLimiterAdmissionTests : IAsyncDisposable
{
    private readonly RecordingStage _next = new();
    private readonly PipelineHarness _h;

    public RunnerLimiterAdmissionTests() => _h = new PipelineHarness(
        new RunnerLimitOptions { PerBackend = { ["local"] = 1 } },
        s => s.AddSingleton<IRunnerStarter>(_next).AddScoped<RunnerLimiter>());

    public ValueTask DisposeAsync() => _h.DisposeAsync();

    private async Task AdmitAsync(RunnerRequest request)
    {
        await using var scope = _h.Scope();
        await _h.Get<RunnerLimiter>(scope).AdmitAsync(request, CancellationToken.None);
    }

    [Fact]
    public async Task With_room_the_claim_is_written_provisioning_and_goes_on()
    {
        var job = PipelineHarness.Job();
        await AdmitAsync(new RunnerRequest(job, PipelineHarness.Row(job, RunnerState.Provisioning)));

        Assert.Equal(job.JobId, Assert.Single(_next.Requests).Runner.JobId);
        Assert.Equal(RunnerState.Provisioning, Assert.Single(await _h.RunnersAsync()).State);
        Assert.False(await _h.Slots.WaitAsync(TimeSpan.Zero, CancellationToken.None)); // took a slot: nothing for the pump
    }

    [Fact]
    public async Task Over_a_limit_the_claim_waits_says_why_and_wakes_the_pump_once_committed()
    {
        var running = PipelineHarness.Job();
        await _h.AddAsync(PipelineHarness.Row(running, RunnerState.Provisioning));
        while (await _h.Slots.WaitAsync(TimeSpan.Zero, CancellationToken.None)) { }

        var job = PipelineHarness.Job("acme/other");
        await AdmitAsync(new RunnerRequest(job, PipelineHarness.Row(job, RunnerState.Provisioning)));

        Assert.Empty(_next.Requests);
        Assert.Equal(RunnerState.Waiting, (await _h.RunnersAsync()).Single(r => r.JobId == job.JobId).State);
        Assert.Equal(["RunnerWaiting"], await _h.OutboxTypesAsync());
        Assert.True(await _h.Slots.WaitAsync(TimeSpan.Zero, CancellationToken.None));
        Assert.True(await _h.Outbox.WaitAsync(TimeSpan.Zero, CancellationToken.None));
    }

    [Fact]
    public async Task While_the_instance_drains_a_claim_waits_for_any_instance_and_says_why()
    {
        await using var scope = _h.Scope();
        var drain = _h.Get<ProvisionerDrain>(scope);
        await drain.DrainAsync(CancellationToken.None);

        var job = PipelineHarness.Job();
        await AdmitAsync(new RunnerRequest(job, PipelineHarness.Row(job, RunnerState.Provisioning)));

        Assert.Empty(_next.Requests); // there was room, but this instance starts nothing now
        var row = Assert.Single(await _h.RunnersAsync());
        Assert.Equal((RunnerState.Waiting, (string?)null), (row.State, row.Instance)); // any instance's pump may start it
        Assert.Equal(["RunnerWaiting"], await _h.OutboxTypesAsync());
        var status = await drain.StatusAsync(CancellationToken.None);
        Assert.Equal((true, 0, 1), (status.Draining, status.Waiting, status.WaitingForAnyInstance));

        while (await _h.Slots.WaitAsync(TimeSpan.Zero, CancellationToken.None)) { }
        Assert.False((await drain.ResumeAsync(CancellationToken.None)).Draining);
        Assert.True(await _h.Slots.WaitAsync(TimeSpan.Zero, CancellationToken.None)); // the pump is woken to start it
    }

    [Fact]
    public async Task A_resumed_start_holds_its_slot_already_and_goes_on_without_a_write()
    {
        var job = PipelineHarness.Job();
        var row = PipelineHarness.Row(job, RunnerState.Provisioning);
        await _h.AddAsync(row);
        await AdmitAsync(new RunnerRequest(job, row, Resumed: true));
        Assert.True(Assert.Single(_next.Requests).Resumed);
        Assert.Single(await _h.RunnersAsync());
    }

    [Fact]
    public async Task A_job_another_instance_claimed_first_goes_no_further_and_throws_nothing()
    {
        var job = PipelineHarness.Job();
        await _h.AddAsync(PipelineHarness.Row(job, RunnerState.Waiting, instance: "elsewhere"));
        var mine = PipelineHarness.Row(job, RunnerState.Provisioning);
        await AdmitAsync(new RunnerRequest(job, mine));
        Assert.Empty(_next.Requests);
        Assert.Equal("elsewhere", Assert.Single(await _h.RunnersAsync()).Instance);
    }
}

/// <summary>The scheduler against a fake backend.</summary>
public sealed class RunnerSchedulerTests : IAsyncDisposable
{
    private readonly PipelineHarness _h = new(configure: s => s.AddScoped<RunnerScheduler>());

    public ValueTask DisposeAsync() => _h.DisposeAsync();

    private async Task<RunnerRecord> StartAsync(RunJob job, bool resumed = false, RunnerState state = RunnerState.Provisioning)
    {
        await _h.AddAsync(PipelineHarness.Row(job, state));
        await using var scope = _h.Scope();
        var db = _h.Get<ProvisionerDbContext>(scope);
        var row = db.Runners.Single(r => r.JobId == job.JobId);
        await _h.Get<RunnerScheduler>(scope).StartAsync(new RunnerRequest(job, row, resumed), CancellationToken.None);
        return (await _h.RunnersAsync()).Single(r => r.JobId == job.JobId);
    }

    [Fact]
    public async Task An_admitted_runner_starts_on_its_templates_backend_with_its_own_token()
    {
        var job = PipelineHarness.Job();
        var row = await StartAsync(job);

        var launch = Assert.Single(_h.Backend.Launches);
        Assert.Equal((job.JobId, $"token-for-{job.JobId:N}"), (launch.JobId, launch.JobToken));
        Assert.Equal((RunnerState.Running, 4242), (row.State, row.ProcessId));
        Assert.Equal(["JobProvisioning", "RunnerStarted"], await _h.OutboxTypesAsync());
    }

    [Fact]
    public async Task A_start_the_backend_refuses_fails_the_runner_with_its_reason_and_tears_it_down()
    {
        _h.Backend.FailStarts = "image not found";
        var job = PipelineHarness.Job();
        var row = await StartAsync(job);

        Assert.Equal((RunnerOutcome.FailedToStart, "image not found"), (row.Outcome!.Value, row.Reason));
        Assert.Equal(RunnerState.Destroyed, row.State);
        Assert.Equal([$"start {job.JobId}", $"kill {job.JobId}", $"destroy {job.JobId}"], _h.Backend.Calls);
        Assert.Equal(["JobProvisioning", "RunnerFinished", "RunnerDestroyed"], await _h.OutboxTypesAsync());
    }

    [Fact]
    public async Task An_unknown_template_never_reaches_a_backend()
    {
        var job = PipelineHarness.Job(template: "gpu");
        var row = await StartAsync(job);
        Assert.Equal(RunnerOutcome.FailedToStart, row.Outcome);
        Assert.Contains("unknown runner template 'gpu'", row.Reason);
        Assert.DoesNotContain(_h.Backend.Calls, c => c.StartsWith("start", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_resumed_start_removes_what_the_cut_short_one_left_before_starting_again()
    {
        var job = PipelineHarness.Job();
        var row = await StartAsync(job, resumed: true);
        Assert.Equal([$"kill {job.JobId}", $"destroy {job.JobId}", $"start {job.JobId}"], _h.Backend.Calls);
        Assert.Equal(RunnerState.Running, row.State);
    }
}
