using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Reconciliation;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>The provisioner end to end on real RabbitMQ, Postgres and bubblewrap, against a fake intake.</summary>
[Collection(ProvisionerCollection.Name)]
public sealed class ProvisionerTests(ProvisionerFixture fx)
{
    private string JobDir(Guid jobId) => Path.Combine(fx.WorkRoot, jobId.ToString());
    private string Workspace(Guid jobId) => Path.Combine(JobDir(jobId), "workspace");

    private static StepSpec Step(string name, string run) => new() { Name = name, Run = run };

    private async Task AssertGoneAsync(Guid jobId)
    {
        Assert.False(Directory.Exists(JobDir(jobId)), "the job's workspace and control directory are deleted");
        Assert.Empty(SandboxProcesses.Of(jobId));
        var sent = await fx.SentAsync(jobId);
        Assert.Single(sent.OfType<RunnerFinished>());
        Assert.IsType<RunnerDestroyed>(sent[^1]);
    }

    [Fact]
    public async Task The_job_is_run_by_the_native_agent_where_the_build_made_one()
    {
        // The provisioner's build compiles the agent ahead of time on Linux; the step's parent is the agent.
        Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "runner-agent", "EphemeralCI.RunnerAgent")), "the build put the native agent beside the managed one");
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("who", "echo \"agent=$(tr '\\0' ' ' < /proc/$PPID/cmdline)\""));

        await fx.PublishAsync(fx.RunJob(jobId));

        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);
        Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
        Assert.Contains("agent=/opt/eci/agent/EphemeralCI.RunnerAgent \n", job.Log);
        await AssertGoneAsync(jobId);
    }

    [Fact]
    public async Task Two_steps_run_in_a_fresh_sandbox_and_report_through_the_relay()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId,
            Step("build", "echo step-one-output; id -u; echo proof > /workspace/proof.txt; while [ ! -f /workspace/go ]; do sleep 0.05; done"),
            Step("test", "echo step-two-output; cat proof.txt; echo to-stderr >&2; echo \"ci=$CI job=$ECI_JOB_ID\""));

        await fx.PublishAsync(fx.RunJob(jobId));

        // The workspace exists on the host while the job runs, written by the job itself.
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(File.Exists(Path.Combine(Workspace(jobId), "proof.txt"))),
            () => $"the job to write its workspace; fetches={job.Fetches} events={string.Join(",", job.Events.Select(e => $"{e.Type}:{e.ExitCode}"))} log:\n{job.Log}");
        Assert.NotEmpty(SandboxProcesses.Of(jobId));
        await File.WriteAllTextAsync(Path.Combine(Workspace(jobId), "go"), "");

        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);
        var completion = await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(completion.Succeeded);
        Assert.Equal(1, job.Fetches);

        var log = job.Log;
        Assert.Contains("==> step 1/2: build", log);
        Assert.Contains("step-one-output\n1000\n", log);
        Assert.Contains("==> step 2/2: test", log);
        Assert.Contains("step-two-output\nproof\nto-stderr\n", log);
        Assert.Contains($"ci=true job={jobId}", log);
        Assert.True(log.IndexOf("step-one-output", StringComparison.Ordinal) < log.IndexOf("step-two-output", StringComparison.Ordinal));

        Assert.Equal(
            [(JobEventTypes.StepStarted, 0, null), (JobEventTypes.StepFinished, 0, 0), (JobEventTypes.StepStarted, 1, null), (JobEventTypes.StepFinished, 1, (int?)0)],
            job.Events.Select(e => (e.Type, e.StepIndex, e.ExitCode)).ToList());

        var sent = await fx.SentAsync(jobId);
        Assert.Collection(sent,
            m => Assert.Equal("local", Assert.IsType<JobProvisioning>(m).Backend),
            m => Assert.IsType<RunnerStarted>(m),
            m =>
            {
                var finished = Assert.IsType<RunnerFinished>(m);
                Assert.Equal(RunnerOutcome.Exited, finished.Outcome);
                Assert.Equal(0, finished.ExitCode);
            },
            m => Assert.IsType<RunnerDestroyed>(m));
        // The template's content hash is on the runner row and in both messages, for the audit.
        var hash = (await fx.RunnerAsync(jobId))!.TemplateHash;
        Assert.Matches("^sha256:[0-9a-f]{64}$", hash);
        Assert.Equal(hash, sent.OfType<JobProvisioning>().Single().TemplateHash);
        Assert.Equal(hash, sent.OfType<RunnerStarted>().Single().TemplateHash);
        await AssertGoneAsync(jobId);
    }

    [Fact]
    public async Task A_failing_step_stops_the_job_and_is_reported()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("fails", "echo before; exit 7"), Step("never", "echo never-runs"));

        await fx.PublishAsync(fx.RunJob(jobId));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        var completion = await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(completion.Succeeded);
        Assert.Equal(7, completion.ExitCode);
        Assert.Equal(0, completion.FailedStepIndex);
        Assert.DoesNotContain("never-runs", job.Log);
        Assert.DoesNotContain(job.Events, e => e.StepIndex == 1);
        await AssertGoneAsync(jobId);
    }

    [Fact]
    public async Task A_detached_daemon_and_a_double_fork_do_not_survive_the_job()
    {
        var jobId = Guid.NewGuid();
        fx.Intake.Register(jobId, Step("escape",
            "setsid nohup sleep 1000 >/dev/null 2>&1 &\n" +
            "( (sleep 1001 >/dev/null 2>&1 &) & )\n" +
            "while [ ! -f /workspace/go ]; do sleep 0.05; done"));

        await fx.PublishAsync(fx.RunJob(jobId));
        await ProvisionerFixture.WaitUntilAsync(() =>
        {
            var cmdlines = SandboxProcesses.Of(jobId).Select(p => p.CommandLine).ToList();
            return Task.FromResult(cmdlines.Any(c => c.StartsWith("sleep 1000")) && cmdlines.Any(c => c.StartsWith("sleep 1001")));
        }, "the daemon and the double-forked process to be running");

        await File.WriteAllTextAsync(Path.Combine(Workspace(jobId), "go"), "");
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);
        await AssertGoneAsync(jobId);
    }

    [Fact]
    public async Task A_job_past_its_deadline_is_killed_and_reported_timed_out()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("hang", "setsid nohup sleep 1000 >/dev/null 2>&1 & sleep 1000"));

        await fx.PublishAsync(fx.RunJob(jobId, timeoutSeconds: 2));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        var runner = await fx.RunnerAsync(jobId);
        Assert.Equal(RunnerOutcome.TimedOut, runner!.Outcome);
        var finished = Assert.Single((await fx.SentAsync(jobId)).OfType<RunnerFinished>());
        Assert.Equal(RunnerOutcome.TimedOut, finished.Outcome);
        Assert.False(job.Completion.Task.IsCompleted, "the agent was killed before it could complete");
        await AssertGoneAsync(jobId);
    }

    [Fact]
    public async Task Cancel_kills_the_runner()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("hang", "setsid nohup sleep 1000 >/dev/null 2>&1 & sleep 1000"));

        await fx.PublishAsync(fx.RunJob(jobId));
        await ProvisionerFixture.WaitUntilAsync(
            () => Task.FromResult(job.Events.Any(e => e.Type == JobEventTypes.StepStarted) && SandboxProcesses.Of(jobId).Any(p => p.CommandLine.StartsWith("sleep 1000"))),
            "the step to be running");

        await fx.PublishAsync(new CancelJob(jobId, DateTimeOffset.UtcNow));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        var finished = Assert.Single((await fx.SentAsync(jobId)).OfType<RunnerFinished>());
        Assert.Equal(RunnerOutcome.Cancelled, finished.Outcome);
        await AssertGoneAsync(jobId);
    }

    [Fact]
    public async Task A_cancel_consumed_by_another_instance_is_carried_out_by_the_owner_of_the_runner()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("hang", "sleep 1000"));
        await fx.PublishAsync(fx.RunJob(jobId));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(job.Events.Any(e => e.Type == JobEventTypes.StepStarted)), "the step to be running");
        var self = fx.Host.Services.GetRequiredService<EphemeralCI.Provisioner.Ownership.ProvisionerInstance>().Name;

        // As this process sees it, the runner is another (live) instance's: the cancel is only written down.
        await SetOwnerAsync(jobId, "another-instance");
        await fx.PublishAsync(new CancelJob(jobId, DateTimeOffset.UtcNow));
        await ProvisionerFixture.WaitUntilAsync(async () => (await fx.RunnerAsync(jobId))!.CancelRequestedAt is not null, "the cancel request written on the row");
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Null((await fx.RunnerAsync(jobId))!.FinishedAt);
        Assert.NotEmpty(SandboxProcesses.Of(jobId));

        // The owner sees the request within its poll and cancels as if it had consumed the CancelJob.
        await SetOwnerAsync(jobId, self);
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);
        Assert.Equal(RunnerOutcome.Cancelled, Assert.Single((await fx.SentAsync(jobId)).OfType<RunnerFinished>()).Outcome);
        await AssertGoneAsync(jobId);
    }

    private async Task SetOwnerAsync(Guid jobId, string instance)
    {
        await using var scope = fx.Host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        await db.Runners.Where(r => r.JobId == jobId).ExecuteUpdateAsync(u => u.SetProperty(r => r.Instance, instance));
    }

    [Fact]
    public async Task The_same_RunJob_delivered_twice_creates_exactly_one_runner()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("once", "echo ran"));
        var message = fx.RunJob(jobId);

        await Task.WhenAll(fx.PublishAsync(message), fx.PublishAsync(message));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(fx.Consumed<RunJob>(jobId) == 2), "both deliveries to be consumed");
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        var sent = await fx.SentAsync(jobId);
        Assert.Single(sent.OfType<JobProvisioning>());
        Assert.Single(sent.OfType<RunnerStarted>());
        Assert.Equal(1, job.Fetches);
        await AssertGoneAsync(jobId);
    }

    [Fact]
    public async Task A_CancelJob_for_a_runner_already_gone_announces_its_end_again_under_the_first_ids()
    {
        var jobId = Guid.NewGuid();
        fx.Intake.Register(jobId, Step("once", "echo ran"));
        await fx.PublishAsync(fx.RunJob(jobId));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);
        var runnerId = (await fx.RunnerAsync(jobId))!.RunnerId;
        async Task<List<EphemeralCI.Messaging.OutboxMessage>> EndRowsAsync()
        {
            await using var scope = fx.Host.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
            var ids = new[] { EphemeralCI.Provisioner.Scheduling.RunnerMessageIds.Finished(runnerId), EphemeralCI.Provisioner.Scheduling.RunnerMessageIds.Destroyed(runnerId) };
            return await db.OutboxMessages.AsNoTracking().Where(m => ids.Contains(m.MessageId)).ToListAsync();
        }
        var first = await EndRowsAsync();
        Assert.Equal(2, first.Count);
        // As if both went out (this fixture has no intake bound on the broker, so they may wait unsent) and were lost in flight.
        var sentLongAgo = new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);
        await using (var scope = fx.Host.Services.CreateAsyncScope())
        {
            var ids = first.Select(m => m.Id).ToList();
            await scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>().OutboxMessages.Where(m => ids.Contains(m.Id))
                .ExecuteUpdateAsync(u => u.SetProperty(m => m.SentAt, sentLongAgo));
        }

        // The intake restarted and never heard the runner was gone: it asks with a CancelJob.
        var asked = DateTimeOffset.UtcNow;
        await fx.PublishAsync(new CancelJob(jobId, asked));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(fx.Consumed<CancelJob>(jobId) == 1), "the CancelJob to be consumed");
        await ProvisionerFixture.WaitUntilAsync(async () => (await EndRowsAsync()).All(m => m.SentAt is null || m.SentAt >= asked), "both announcements queued to go out again");

        var again = await EndRowsAsync();
        Assert.Equal(2, again.Count); // no new rows: the same ids, so the intake records each once
        Assert.Equal(first.OrderBy(m => m.Id).Select(m => m.Body), again.OrderBy(m => m.Id).Select(m => m.Body)); // the teardown report goes again too
        Assert.NotNull(Assert.IsType<RunnerDestroyed>((await fx.SentAsync(jobId))[^1]).Teardown);
        Assert.Equal(RunnerState.Destroyed, (await fx.RunnerAsync(jobId))!.State);
    }

    [Fact]
    public async Task The_next_attempts_RunJob_replaces_the_destroyed_runner_with_a_new_one_and_an_older_attempts_is_ignored()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("once", "echo ran"));
        await fx.PublishAsync(fx.RunJob(jobId));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);
        Assert.Equal(1, (await fx.RunnerAsync(jobId))!.Attempt);

        // The intake asks for attempt 2 only after attempt 1's runner was reported destroyed (its runner was lost).
        await fx.PublishAsync(fx.RunJob(jobId) with { Attempt = 2 });
        await ProvisionerFixture.WaitUntilAsync(async () => await fx.RunnerAsync(jobId) is { Attempt: 2, State: RunnerState.Destroyed }, "attempt 2's runner to run and be destroyed");
        var second = (await fx.RunnerAsync(jobId))!;
        Assert.Equal(RunnerRecord.RunnerIdFor(jobId, 2), second.RunnerId);
        Assert.NotEqual(RunnerRecord.RunnerIdFor(jobId), second.RunnerId);
        Assert.Equal((2, 2), (job.Fetches, job.TokenAttempt)); // a new agent, with a token of its own attempt
        var sent = await fx.SentAsync(jobId);
        Assert.Single(sent.OfType<RunnerStarted>(), m => m.RunnerId == second.RunnerId);
        Assert.Single(sent.OfType<RunnerFinished>(), m => m.RunnerId == second.RunnerId && m.Attempt == 2);
        Assert.Single(sent.OfType<RunnerDestroyed>(), m => m.RunnerId == second.RunnerId && m.Attempt == 2 && m.Teardown is { Passed: true });

        // A redelivered RunJob of attempt 1 is stale: nothing starts, nothing is announced.
        await fx.PublishAsync(fx.RunJob(jobId));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(fx.Consumed<RunJob>(jobId) == 3), "the stale RunJob to be consumed");
        Assert.Equal((2, RunnerState.Destroyed), ((await fx.RunnerAsync(jobId))!.Attempt, (await fx.RunnerAsync(jobId))!.State));
        Assert.Equal(sent.Count, (await fx.SentAsync(jobId)).Count);
        Assert.Equal(2, job.Fetches);
    }

    [Fact]
    public async Task Cancel_before_RunJob_leaves_a_tombstone_and_no_runner_ever_starts()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("never", "echo never"));

        await fx.PublishAsync(new CancelJob(jobId, DateTimeOffset.UtcNow));
        await fx.WaitForStateAsync(jobId, RunnerState.Tombstone);
        await fx.PublishAsync(fx.RunJob(jobId));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(fx.Consumed<RunJob>(jobId) == 1), "the RunJob to be consumed");

        Assert.Equal(RunnerState.Tombstone, (await fx.RunnerAsync(jobId))!.State);
        Assert.Empty(await fx.SentAsync(jobId));
        Assert.Equal(0, job.Fetches);
        Assert.False(Directory.Exists(JobDir(jobId)));
    }

    [Fact]
    public async Task After_a_restart_a_runner_left_running_is_reported_lost_and_leftovers_are_removed()
    {
        var jobId = Guid.NewGuid();
        var leftover = Path.Combine(fx.WorkRoot, Guid.NewGuid().ToString(), "workspace");
        Directory.CreateDirectory(leftover);
        await File.WriteAllTextAsync(Path.Combine(leftover, "stale.txt"), "from a previous process");
        await using (var scope = fx.Host.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
            db.Runners.Add(new RunnerRecord
            {
                JobId = jobId,
                RunnerId = RunnerRecord.RunnerIdFor(jobId),
                State = RunnerState.Running,
                Backend = "local",
                Template = "default",
                ProcessId = int.MaxValue, // no such process: its sandbox died with the old provisioner
                CreatedAt = DateTimeOffset.UtcNow,
                StartedAt = DateTimeOffset.UtcNow,
            });
            await db.SaveChangesAsync();
        }

        await fx.Host.Services.GetRequiredService<StartupReconciler>().ReconcileAsync(CancellationToken.None);

        var runner = await fx.RunnerAsync(jobId);
        Assert.Equal(RunnerState.Destroyed, runner!.State);
        Assert.Equal(RunnerOutcome.Lost, runner.Outcome);
        var sent = await fx.SentAsync(jobId);
        var finished = Assert.IsType<RunnerFinished>(sent[0]);
        Assert.Equal(RunnerOutcome.Lost, finished.Outcome);
        Assert.Equal(StartupReconciler.LostReason, finished.Reason);
        Assert.IsType<RunnerDestroyed>(sent[1]);
        Assert.False(Directory.Exists(Path.GetDirectoryName(leftover)));
    }
}
