using System.Diagnostics;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>
/// A real provisioner process, SIGKILLed mid-burst and started again; and the intake taken down for
/// 20 s while a job reports. The outcomes that are acceptable are written in each test.
/// </summary>
public sealed class ProvisionerCrashTests(ProvisionerProcess provisioner, ITestOutputHelper output) : IClassFixture<ProvisionerProcess>
{
    private static StepSpec Step(string name, string run) => new() { Name = name, Run = run };

    [Fact]
    public async Task Killed_mid_burst_its_sandboxes_die_within_a_second_and_after_a_restart_no_job_without_a_running_runner_is_lost()
    {
        const int burst = 10;
        var jobs = Enumerable.Range(0, burst).Select(_ => Guid.NewGuid()).ToList();
        var fakes = jobs.ToDictionary(id => id, id => provisioner.Intake.Register(id, Step("work", "echo ran-once; sleep 3")));
        foreach (var id in jobs) await provisioner.PublishAsync(ProvisionerProcess.RunJob(id));

        // Mid-burst: runners running, and jobs still waiting for a slot behind them.
        await ProvisionerFixture.WaitUntilAsync(async () =>
        {
            var rows = await provisioner.RunnersAsync(jobs);
            return rows.Count(r => r.State == RunnerState.Running) >= 2 && rows.Count(r => r.State == RunnerState.Waiting) >= 2;
        }, () => "a burst with runners running and jobs waiting; output:\n" + provisioner.Output);
        // The sandboxes' processes, found before the kill (the scan of /proc is slow; a liveness check is not).
        var sandboxPids = jobs.SelectMany(id => SandboxProcesses.Of(id)).Select(p => p.Pid).ToList();
        Assert.NotEmpty(sandboxPids);
        await provisioner.KillAsync();
        var killedAt = Stopwatch.StartNew();
        var atDeath = (await provisioner.RunnersAsync(jobs)).ToDictionary(r => r.JobId, r => r.State);
        var running = atDeath.Where(s => s.Value == RunnerState.Running).Select(s => s.Key).ToHashSet();
        Assert.NotEmpty(running);

        // Sandboxes die with their provisioner (setpriv's death signal, bubblewrap's --die-with-parent).
        while (sandboxPids.Any(EphemeralCI.Provisioner.Backends.LocalSandbox.ProcessTree.IsAlive) && killedAt.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(10);
        var died = killedAt.Elapsed;
        output.WriteLine($"states at death: {string.Join(", ", atDeath.GroupBy(s => s.Value).Select(g => $"{g.Key} {g.Count()}"))}; last sandbox gone after {died.TotalMilliseconds:F0} ms");
        Assert.All(jobs, id => Assert.Empty(SandboxProcesses.Of(id)));
        // 1 s is the target (0.55-0.67 s measured with a /proc scan on a loaded 2-core machine); 2 s leaves room for a machine at load 30.
        Assert.True(died < TimeSpan.FromSeconds(2), $"sandboxes outlived their provisioner by {died}");

        await provisioner.StartAsync();
        // Every job has its runner (RunJobs the dead process had not taken are redelivered) and every runner is gone.
        await ProvisionerFixture.WaitUntilAsync(async () => await provisioner.RunnersAsync(jobs) is var all && all.Count == jobs.Count && all.All(r => r.State == RunnerState.Destroyed),
            () => "every runner destroyed after the restart; output:\n" + provisioner.Output, seconds: 120);

        var rows = (await provisioner.RunnersAsync(jobs)).ToDictionary(r => r.JobId);
        var started = await provisioner.StartedAnnouncementsAsync(jobs);
        foreach (var id in jobs)
        {
            var runner = rows[id];
            // At most one runner ever announced per job.
            Assert.True(started[id] <= 1, $"job {id}: {started[id]} RunnerStarted");
            if (running.Contains(id))
            {
                // Its runner was running when the provisioner died: lost (or it had just finished).
                Assert.True(runner.Outcome is RunnerOutcome.Lost or RunnerOutcome.Exited, $"job {id}: {runner.Outcome} {runner.Reason}");
                continue;
            }
            // No runner yet (its RunJob not taken, waiting, or claimed and starting): started after the restart, ran once, succeeded.
            RunnerState? state = atDeath.TryGetValue(id, out var s) ? s : null;
            Assert.True(runner.Outcome == RunnerOutcome.Exited && runner.ExitCode == 0, $"job {id} ({state?.ToString() ?? "no row"} at death): {runner.Outcome} {runner.ExitCode} {runner.Reason}");
            Assert.True((await fakes[id].Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, fakes[id].Log);
            if (state is null or RunnerState.Waiting) Assert.Equal(1, fakes[id].Fetches);
        }
        // No leftovers: no process, no folder.
        Assert.All(jobs, id => Assert.Empty(SandboxProcesses.Of(id)));
        Assert.All(jobs, id => Assert.False(Directory.Exists(Path.Combine(provisioner.WorkRoot, id.ToString())), $"folder of {id} left"));
    }

    [Fact]
    public async Task An_intake_outage_of_20_seconds_while_a_job_reports_fails_no_job()
    {
        var jobId = Guid.NewGuid();
        var job = provisioner.Intake.Register(jobId,
            Step("first", "echo before-outage"),
            Step("second", "sleep 2; echo during-outage"),
            Step("third", "echo after-outage"));
        await provisioner.PublishAsync(ProvisionerProcess.RunJob(jobId));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(job.Events.Any(e => e.Type == JobEventTypes.StepStarted && e.StepIndex == 1)),
            () => "the second step to start; output:\n" + provisioner.Output);

        // The intake goes away: connections refused, open ones cut. Steps go on; every report waits.
        provisioner.IntakeProxy.Pause();
        await Task.Delay(TimeSpan.FromSeconds(20));
        Assert.False(job.Completion.Task.IsCompleted);
        provisioner.IntakeProxy.Resume();

        var completion = await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(completion.Succeeded, job.Log);
        Assert.Contains("before-outage", job.Log);
        Assert.Contains("during-outage", job.Log);
        Assert.Contains("after-outage", job.Log);
        await ProvisionerFixture.WaitUntilAsync(async () => (await provisioner.RunnersAsync([jobId])).Single().State == RunnerState.Destroyed, "the runner destroyed");
        var runner = (await provisioner.RunnersAsync([jobId])).Single();
        Assert.Equal(RunnerOutcome.Exited, runner.Outcome);
        Assert.Equal(0, runner.ExitCode);
    }

    [Theory]
    [InlineData("broker")]
    [InlineData("database")]
    public async Task An_outage_of_the_broker_or_the_database_mid_burst_loses_no_job_and_runs_none_twice(string service)
    {
        const int burst = 8;
        var jobs = Enumerable.Range(0, burst).Select(_ => Guid.NewGuid()).ToList();
        var fakes = jobs.ToDictionary(id => id, id => provisioner.Intake.Register(id, Step("work", "echo ran-once; sleep 2")));
        foreach (var id in jobs) await provisioner.PublishAsync(ProvisionerProcess.RunJob(id));
        await ProvisionerFixture.WaitUntilAsync(async () =>
        {
            var rows = await provisioner.RunnersAsync(jobs);
            return rows.Count(r => r.State == RunnerState.Running) >= 1 && rows.Count(r => r.State == RunnerState.Waiting) >= 2;
        }, () => "a burst with runners running and jobs waiting; output:\n" + provisioner.Output);

        // Connections cut and refused for 20 s, as a restart of the service does; the shared service itself stays up.
        var proxy = service == "broker" ? provisioner.BrokerProxy : provisioner.DatabaseProxy;
        proxy.Pause();
        await Task.Delay(TimeSpan.FromSeconds(20));
        proxy.Resume();

        // Every job runs to the end, once: none failed, none stuck (bound: 120 s after the outage).
        await ProvisionerFixture.WaitUntilAsync(async () => await provisioner.RunnersAsync(jobs) is var all && all.Count == jobs.Count && all.All(r => r.State == RunnerState.Destroyed),
            () => $"every runner destroyed after the {service} outage; states: " +
                string.Join(", ", provisioner.RunnersAsync(jobs).GetAwaiter().GetResult().GroupBy(r => r.State).Select(g => $"{g.Key} {g.Count()}")) +
                "; output:\n" + provisioner.Output, seconds: 120);
        var rows = (await provisioner.RunnersAsync(jobs)).ToDictionary(r => r.JobId);
        var started = await provisioner.StartedAnnouncementsAsync(jobs);
        foreach (var id in jobs)
        {
            Assert.True(rows[id].Outcome == RunnerOutcome.Exited && rows[id].ExitCode == 0, $"job {id}: {rows[id].Outcome} {rows[id].ExitCode} {rows[id].Reason}");
            Assert.True((await fakes[id].Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, fakes[id].Log);
            Assert.True(started[id] <= 1, $"job {id}: {started[id]} RunnerStarted");
            Assert.Equal(1, fakes[id].Fetches);
        }
        Assert.All(jobs, id => Assert.Empty(SandboxProcesses.Of(id)));
        Assert.All(jobs, id => Assert.False(Directory.Exists(Path.Combine(provisioner.WorkRoot, id.ToString())), $"folder of {id} left"));
    }
}
