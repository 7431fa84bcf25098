using System.Diagnostics;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// The all-in-one server on its own data folder: what it stored survives a restart, and a crash in
/// the middle of a job leaves no runner behind and no job stuck in "running".
/// </summary>
public sealed class ServerRestartTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task Finished_jobs_survive_a_restart_and_a_job_running_at_a_crash_fails_cleanly()
    {
        var done = await server.Intake.SubmitAsync(JobClient.Job("before restart", null, ("hello", "echo kept across restarts")));
        Assert.Equal("succeeded", (await server.Intake.WaitForTerminalAsync(done)).GetProperty("status").GetString());

        var running = await server.Intake.SubmitAsync(JobClient.Job("crashes mid-job", null, ("wait", "echo waiting; sleep 300")));
        await server.Intake.WaitForEventAsync(running, "step.started");

        await server.KillAsync(); // SIGKILL: no shutdown code runs
        // The sandbox dies with its parent: nothing of the job may run on while the server is down.
        for (var i = 0; i < 50 && RunnerTraces.ProcessesOf(running).Count > 0; i++) await Task.Delay(100);
        Assert.Empty(RunnerTraces.ProcessesOf(running));

        await server.StartAsync();

        var crashed = await server.Intake.WaitForTerminalAsync(running);
        Assert.Equal("failed", crashed.GetProperty("status").GetString());
        Assert.Contains("lost", crashed.GetProperty("statusReason").GetString());
        await server.WaitForVerifiedRunnerEndAsync(running);
        await RunnerTraces.AssertGoneAsync(running, server.RunnerWorkRoot);

        var kept = await server.Intake.GetJobAsync(done);
        Assert.Equal("succeeded", kept.GetProperty("status").GetString());
        Assert.Contains("kept across restarts", await server.Intake.GetStringAsync($"/api/v1/jobs/{done}/logs"));

        // And it still runs jobs.
        var after = await server.Intake.SubmitAsync(JobClient.Job("after restart", null, ("hello", "echo still here")));
        Assert.Equal("succeeded", (await server.Intake.WaitForTerminalAsync(after)).GetProperty("status").GetString());
        // Also `done`'s, though its RunnerDestroyed may have been queued in memory or its teardown under way at the kill:
        // the restarted intake asks about every job over whose runner it never heard was gone.
        await server.WaitForVerifiedRunnerEndAsync(done);
        await server.WaitForVerifiedRunnerEndAsync(after);
    }

    [Fact]
    public async Task A_job_whose_runner_was_being_torn_down_at_a_crash_gets_its_runner_destroyed_and_attestation_after_the_restart()
    {
        var id = await server.Intake.SubmitAsync(JobClient.Job("ends at the crash", null, ("hello", "echo bye")));
        // Kill as soon as the intake has heard the runner finished: its teardown, its check or its RunnerDestroyed
        // (queued on the in-memory bus) is under way, and the intake already counts the job as over.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!(await server.Intake.EventTypesAsync(id)).Contains("runner.finished"))
        {
            Assert.True(DateTime.UtcNow < deadline, "the runner never finished");
            await Task.Delay(5);
        }
        await server.KillAsync();
        await server.StartAsync();

        await server.WaitForVerifiedRunnerEndAsync(id);
        Assert.Equal(1, (await server.Intake.EventTypesAsync(id)).Count(t => t == "runner.destroyed"));
    }

    [Fact]
    public async Task Without_bubblewrap_the_server_says_how_to_install_it_instead_of_a_stack_trace()
    {
        using var process = Process.Start(new ProcessStartInfo("dotnet")
        {
            ArgumentList =
            {
                ServerFixture.ServerDll,
                "--Provisioner:LocalSandbox:BwrapPath=/nonexistent/bwrap",
                $"--EphemeralCI:DataDirectory={Path.Combine(server.DataDirectory, "never-used")}",
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await process.WaitForExitAsync(timeout.Token);

        var said = await stderr + await stdout;
        Assert.NotEqual(0, process.ExitCode);
        Assert.Contains("apt-get install bubblewrap", said);
        Assert.DoesNotContain("   at ", said); // no stack trace
        Assert.False(Directory.Exists(Path.Combine(server.DataDirectory, "never-used")), "nothing is created before the check");
    }
}
