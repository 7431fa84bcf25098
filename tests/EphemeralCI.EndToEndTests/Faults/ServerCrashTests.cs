using System.Text.Json;
using Xunit;
using Xunit.Abstractions;

namespace EphemeralCI.EndToEndTests.Faults;

/// <summary>The all-in-one server with at most 4 runners at once, so a burst has jobs running, waiting and not yet taken.</summary>
public sealed class CrashedServerFixture : ServerFixture, IAsyncLifetime
{
    async Task IAsyncLifetime.InitializeAsync()
    {
        ExtraArguments.Add("--Provisioner:Limits:PerBackend:local=4");
        await InitializeAsync();
    }
}

/// <summary>
/// SIGKILL of the all-in-one server in the middle of a burst — an OOM kill, a power cut of the
/// process — then a restart on the same data folder, as systemd would. What must hold (issue 16's
/// rule): every acknowledged job reaches an end (0 lost, 0 stuck after the bound); only a job whose
/// runner was running at the kill may fail, as "lost", and none that asked for a retry on a lost runner
/// (<c>retry: {infrastructure: 1}</c>, every other job of the mid-step case) fails at all; no job gets two
/// runners at once (a retried one gets one per attempt, the next only after the last is destroyed); nothing
/// of any runner is left on the machine. The counts go to the test output (docs/reliability.md).
/// </summary>
public sealed class ServerCrashTests(CrashedServerFixture server, ITestOutputHelper output) : IClassFixture<CrashedServerFixture>
{
    private const int Jobs = 24;
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(3);

    /// <param name="killWhenRunning">0: half-way through acknowledging a burst sent at once; 3: with runners mid-step.</param>
    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public async Task Killed_mid_burst_and_restarted_no_acknowledged_job_is_lost_stuck_or_run_twice_and_nothing_is_left(int killWhenRunning)
    {
        List<Guid> ids;
        List<string?> atKill;
        DateTimeOffset killedAt;
        if (killWhenRunning == 0)
        {
            // The burst arrives all at once and the server dies half-way through acknowledging it: runners
            // are being made, messages are in flight, and some submissions get no answer. Those were never
            // acknowledged (the CI system retries them); every acknowledged one must run.
            (ids, killedAt) = await server.Intake.SubmitBurstKilledHalfWayAsync(Jobs,
                i => JobClient.Job($"burst {i}", null, ("work", $"echo begin {i}; sleep 2; echo end {i}")),
                async () =>
                {
                    var at = DateTimeOffset.UtcNow;
                    await server.KillAsync();
                    return at;
                });
            atKill = ["not asked"];
        }
        else
        {
            ids = [];
            for (var i = 0; i < Jobs; i++)
            {
                var job = JobClient.Job($"burst {i}", null, ("work", $"echo begin {i}; sleep 2; echo end {i}"));
                ids.Add(await server.Intake.SubmitAsync(i % 2 == 0 ? JobClient.WithInfrastructureRetries(job, 1) : job));
            }
            // Kill with runners mid-step (with the limit of 4, others wait and some are not yet taken).
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while ((await server.Intake.StatusesAsync(ids)).Count(s => s == "running") < killWhenRunning)
            {
                Assert.True(DateTime.UtcNow < deadline, $"the burst never reached {killWhenRunning} running jobs");
                await Task.Delay(100);
            }
            atKill = await server.Intake.StatusesAsync(ids);
            killedAt = DateTimeOffset.UtcNow;
            await server.KillAsync();
        }
        output.WriteLine($"at the kill: {string.Join(", ", atKill.GroupBy(s => s).Select(g => $"{g.Count()} {g.Key}"))}");

        // Nothing of a runner may go on while the server is down.
        for (var i = 0; i < 30 && ids.Any(id => RunnerTraces.ProcessesOf(id).Count > 0); i++) await Task.Delay(100);
        Assert.All(ids, id => Assert.Empty(RunnerTraces.ProcessesOf(id)));

        await server.StartAsync();
        var restartedAt = DateTimeOffset.UtcNow;

        var finalJobs = await server.Intake.WaitForEndsAsync(ids, Bound);

        var problems = new List<string>();
        int succeeded = 0, lost = 0, retried = 0;
        foreach (var id in ids)
        {
            if (!finalJobs.TryGetValue(id, out var job))
            {
                problems.Add($"{id}: stuck '{(await server.Intake.GetJobAsync(id)).GetProperty("status").GetString()}' {Bound.TotalMinutes} min after the restart");
                continue;
            }
            var events = await server.Intake.TimelineWithAsync(id, "runner.destroyed", TimeSpan.FromSeconds(30));
            var started = events.Where(e => e.Type == "runner.started").ToList();
            var runners = started.Select(e => e.RunnerId).Distinct().Count();
            var attempt = job.GetProperty("attempt").GetInt32();
            var mayRetry = killWhenRunning > 0 && ids.IndexOf(id) % 2 == 0;
            if (attempt > 1) retried++;
            if (runners > attempt || (attempt > 1 && !mayRetry))
            {
                problems.Add($"{id}: {runners} runners started in {attempt} attempt(s) ({string.Join(", ", started.Select(e => e.RunnerId))})");
            }
            // A retried job's next runner starts only after the lost one is destroyed: never two at once.
            for (var n = 1; n < started.Count; n++)
            {
                var before = events.LastOrDefault(e => e.Type == "runner.destroyed" && e.RunnerId == started[n - 1].RunnerId);
                if (before is null || before.At > started[n].At) problems.Add($"{id}: runner {started[n].RunnerId} started before {started[n - 1].RunnerId} was destroyed");
            }
            var status = job.GetProperty("status").GetString();
            var reason = job.TryGetProperty("statusReason", out var r) ? r.GetString() : null;
            if (status == "succeeded")
            {
                succeeded++;
                var log = await server.Intake.GetStringAsync($"/api/v1/jobs/{id}/logs");
                if (!log.Contains("end ", StringComparison.Ordinal)) problems.Add($"{id}: succeeded without its step's last line:\n{log}");
            }
            else if (status == "failed" && reason?.Contains("lost", StringComparison.Ordinal) == true && started.Any(e => e.At <= killedAt) && !mayRetry)
            {
                lost++; // its runner was running at the kill: its steps were cut, the one allowed loss
            }
            else
            {
                problems.Add($"{id}: ended {status} ({reason}); runner started before the kill: {started.Any(e => e.At <= killedAt)}; timeline: {string.Join(", ", events.Select(e => e.Type))}");
            }
            if (events.All(e => e.Type != "runner.destroyed")) problems.Add($"{id}: no runner.destroyed");
        }
        foreach (var id in ids)
        {
            if (RunnerTraces.ProcessesOf(id).Count > 0) problems.Add($"{id}: processes left");
            if (Directory.Exists(Path.Combine(server.RunnerWorkRoot, id.ToString())) || Directory.Exists(Path.Combine(server.RunnerWorkRoot, id.ToString("N"))))
            {
                problems.Add($"{id}: runner folder left");
            }
        }
        // Lost or not, every runner ends with a valid attestation whose teardown check passed.
        if (problems.Count == 0) foreach (var id in ids) await server.WaitForVerifiedRunnerEndAsync(id);
        var lastEnd = finalJobs.Values.Select(j => j.GetProperty("finishedAt").GetDateTimeOffset()).DefaultIfEmpty(restartedAt).Max();
        output.WriteLine($"{ids.Count} of {Jobs} acknowledged: {succeeded} succeeded ({retried} of them on a second attempt after a lost runner), {lost} failed as lost (running at the kill, no retry asked), " +
            $"{ids.Count - finalJobs.Count} stuck, {problems.Count} problems; last job ended {(lastEnd - restartedAt).TotalSeconds:F1} s after the restart");
        Assert.True(problems.Count == 0, string.Join("\n", problems) + "\n--- server output since the restart ---\n" + string.Join("\n", server.OutputSince(0).TakeLast(80)));
    }
}
