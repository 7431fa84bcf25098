using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>
/// Two provisioner processes on one database and one queue (as two replicas, or two machines, would
/// run): they share a burst under one set of limits, and when one is SIGKILLed the other adopts what
/// it had not started once its lease runs out.
/// </summary>
public sealed class ProvisionerInstancesTests(ProvisionerProcess first, ITestOutputHelper output) : IClassFixture<ProvisionerProcess>
{
    private static StepSpec Step(string name, string run) => new() { Name = name, Run = run };

    [Fact]
    public async Task Two_instances_share_a_burst_within_one_limit_and_the_survivor_of_a_kill_runs_what_the_dead_one_had_not_started()
    {
        var second = await first.StartPeerAsync("second");
        try
        {
            await ShareAndSurviveAsync(second);
        }
        finally
        {
            await second.DisposeAsync();
        }
    }

    private async Task ShareAndSurviveAsync(ProvisionerProcess second)
    {
        const int burst = 12;
        var jobs = Enumerable.Range(0, burst).Select(_ => Guid.NewGuid()).ToList();
        var fakes = jobs.ToDictionary(id => id, id => first.Intake.Register(id, Step("work", "echo ran-once; sleep 3")));
        foreach (var id in jobs) await first.PublishAsync(ProvisionerProcess.RunJob(id));

        // Both take jobs; together they never hold more runners than the one limit allows.
        var most = 0;
        await ProvisionerFixture.WaitUntilAsync(async () =>
        {
            var rows = await first.RunnersAsync(jobs);
            most = Math.Max(most, rows.Count(r => r.State is RunnerState.Provisioning or RunnerState.Running or RunnerState.Finished));
            return rows.Any(r => r.Instance == "first" && r.State == RunnerState.Running)
                && rows.Any(r => r.Instance == "first" && r.State == RunnerState.Waiting)
                && rows.Any(r => r.Instance == "second");
        }, () => "both instances with runners, the first with jobs waiting; first:\n" + first.Output + "\nsecond:\n" + second.Output, seconds: 60);

        await first.KillAsync();
        var atDeath = (await first.RunnersAsync(jobs)).ToDictionary(r => r.JobId);
        var runningOnFirst = atDeath.Values.Where(r => r.Instance == "first" && r.State == RunnerState.Running).Select(r => r.JobId).ToHashSet();
        output.WriteLine("at death: " + string.Join(", ", atDeath.Values.GroupBy(r => (r.Instance, r.State)).Select(g => $"{g.Key.Instance}/{g.Key.State} {g.Count()}")));

        // The survivor alone finishes the burst: the dead one's waiting jobs after its lease, its redelivered RunJobs at once.
        await ProvisionerFixture.WaitUntilAsync(async () =>
        {
            var rows = await first.RunnersAsync(jobs);
            most = Math.Max(most, rows.Count(r => r.State is RunnerState.Provisioning or RunnerState.Running or RunnerState.Finished));
            return rows.Count == burst && rows.All(r => r.State == RunnerState.Destroyed);
        }, () => "every runner destroyed by the survivor; second:\n" + second.Output, seconds: 120);
        Assert.True(most <= ProvisionerProcess.Limit, $"{most} runners at once across both instances (limit {ProvisionerProcess.Limit})");

        var rows = (await first.RunnersAsync(jobs)).ToDictionary(r => r.JobId);
        var started = await first.StartedAnnouncementsAsync(jobs);
        foreach (var id in jobs)
        {
            var runner = rows[id];
            Assert.True(started[id] <= 1, $"job {id}: {started[id]} RunnerStarted");
            if (runningOnFirst.Contains(id))
            {
                // Its sandbox died with its provisioner: lost (or it had just finished).
                Assert.True(runner.Outcome is RunnerOutcome.Lost or RunnerOutcome.Exited, $"job {id}: {runner.Outcome} {runner.Reason}");
                continue;
            }
            Assert.True(runner.Outcome == RunnerOutcome.Exited && runner.ExitCode == 0,
                $"job {id} ({atDeath.GetValueOrDefault(id)?.Instance}/{atDeath.GetValueOrDefault(id)?.State}): {runner.Outcome} {runner.ExitCode} {runner.Reason}");
            Assert.True((await fakes[id].Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, fakes[id].Log);
            Assert.Equal(1, fakes[id].Fetches);
            if (atDeath.GetValueOrDefault(id) is { Instance: "first", State: RunnerState.Waiting }) Assert.Equal("second", runner.Instance);
        }
        Assert.All(jobs, id => Assert.Empty(SandboxProcesses.Of(id)));
        Assert.All(jobs, id => Assert.False(Directory.Exists(Path.Combine(second.WorkRoot, id.ToString())), $"folder of {id} left by the survivor"));

        // The first instance's machine keeps what its dead sandboxes left until it starts again, and that start removes it.
        await first.StartAsync(consumers: 2);
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(jobs.All(id => !Directory.Exists(Path.Combine(first.WorkRoot, id.ToString())))),
            () => "the restarted first instance to remove its leftovers; output:\n" + first.Output, seconds: 30);
    }

    [Fact]
    public async Task A_drained_instance_starts_no_runner_and_its_peer_runs_every_job_both_took()
    {
        var second = await first.StartPeerAsync("second");
        using var admin = first.AdminClient();
        try
        {
            using (var drain = await admin.PostAsync("provisioner/admin/drain", null)) Assert.True(drain.IsSuccessStatusCode, await drain.Content.ReadAsStringAsync());
            const int burst = 6;
            var jobs = Enumerable.Range(0, burst).Select(_ => Guid.NewGuid()).ToList();
            var fakes = jobs.ToDictionary(id => id, id => first.Intake.Register(id, Step("work", "echo ran-on-the-peer")));
            foreach (var id in jobs) await first.PublishAsync(ProvisionerProcess.RunJob(id));

            await ProvisionerFixture.WaitUntilAsync(async () => (await first.RunnersAsync(jobs)) is { Count: burst } rows && rows.All(r => r.State == RunnerState.Destroyed),
                () => "every job run by the second instance; first:\n" + first.Output + "\nsecond:\n" + second.Output, seconds: 90);
            foreach (var runner in await first.RunnersAsync(jobs))
            {
                Assert.Equal("second", runner.Instance);
                Assert.True(runner.Outcome == RunnerOutcome.Exited && runner.ExitCode == 0, $"job {runner.JobId}: {runner.Outcome} {runner.Reason}");
            }
            // The drained one did receive some of the burst (the queue hands RunJobs out in turn) and handed them on.
            Assert.Contains("is draining", first.Output);
            Assert.All(jobs, id => Assert.Equal(1, fakes[id].Fetches));
        }
        finally
        {
            using var resume = await admin.PostAsync("provisioner/admin/resume", null);
            Assert.Contains("\"draining\":false", await resume.Content.ReadAsStringAsync());
            await second.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_second_process_under_a_live_instance_name_refuses_to_start()
    {
        // The refused process exits at start; its output is in the failure's message.
        var refused = await Assert.ThrowsAnyAsync<Exception>(() => first.StartPeerAsync("first"));
        Assert.Contains("Provisioner instance 'first' is already running", refused.Message, StringComparison.Ordinal);
    }
}
