using System.Diagnostics;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Teardown;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>
/// The independent teardown check on the real machine: a runner destroyed cleanly is verified gone on
/// every count; what is left on purpose — a process carrying the job's id outside its cgroup (as if it had
/// escaped), a folder left behind — is found, cleanup runs again, and the report says what stayed.
/// </summary>
[Collection(ProvisionerCollection.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class TeardownCheckTests(ProvisionerFixture fx)
{
    private static StepSpec Step(string name, string run) => new() { Name = name, Run = run };

    private async Task<TeardownReport> DestroyedReportAsync(Guid jobId)
    {
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);
        var destroyed = (await fx.SentAsync(jobId)).OfType<RunnerDestroyed>().Single();
        return Assert.IsType<TeardownReport>(destroyed.Teardown);
    }

    [Fact]
    public async Task A_runner_torn_down_cleanly_is_verified_gone_on_every_count()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("hello", "echo hello; sleep 30 & disown; echo started-a-daemon"));

        await fx.PublishAsync(fx.RunJob(jobId));
        var report = await DestroyedReportAsync(jobId);

        Assert.True(report.Passed, string.Join("; ", report.Checks.Where(c => !c.Passed).Select(c => $"{c.Name}: {c.Found}")));
        Assert.Equal(1, report.Attempts);
        Assert.Null(report.Leftovers);
        var names = report.Checks.Select(c => c.Name).ToList();
        foreach (var expected in new[] { "processes", "cgroup", "workspace", "control", "job-directory", "overlay", "netns", "veth", "nftables" })
        {
            Assert.Contains(expected, names);
        }
        Assert.Contains(report.Checks, c => c.Name == "workspace" && c.Target.EndsWith($"{jobId}/workspace", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_process_with_the_jobs_id_outside_its_cgroup_is_found_and_reported_after_three_cleanups()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("wait", "while [ ! -f /workspace/go ]; do sleep 0.05; done"));
        await fx.PublishAsync(fx.RunJob(jobId));
        var workspace = Path.Combine(fx.WorkRoot, jobId.ToString(), "workspace");
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(Directory.Exists(workspace)), "the job's workspace");

        // The stand-in for an escape: a process of the job (its id in the environment, as the agent's
        // children carry it) that is not in the job's cgroup, so cgroup.kill does not reach it.
        var escaped = new ProcessStartInfo("sleep") { ArgumentList = { "600" }, UseShellExecute = false };
        escaped.Environment["ECI_JOB_ID"] = jobId.ToString();
        using var process = Process.Start(escaped)!;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(workspace, "go"), "");
            var report = await DestroyedReportAsync(jobId);

            Assert.False(report.Passed);
            Assert.Equal(3, report.Attempts);
            var processes = Assert.Single(report.Checks, c => c.Name == "processes");
            Assert.False(processes.Passed);
            Assert.Contains($"pid {process.Id} (sleep, its id in the environment)", processes.Found);
            Assert.Equal(3, report.Leftovers!.Count);
            Assert.All(report.Leftovers, l => Assert.Contains($"pid {process.Id}", l));
            // Everything else of the runner did go.
            Assert.All(report.Checks.Where(c => c.Name != "processes"), c => Assert.True(c.Passed, $"{c.Name}: {c.Found}"));
        }
        finally
        {
            process.Kill();
        }
    }

    [Fact]
    public async Task A_folder_left_behind_is_found_by_the_check_not_taken_on_the_teardowns_word()
    {
        // A teardown that forgets the control folder (a bug) still says it destroyed the runner.
        var verifier = fx.Host.Services.GetServices<ITeardownVerifier>().OfType<LocalTeardownVerifier>().Single();
        var teardown = fx.Host.Services.GetRequiredService<RunnerTeardown>();
        var jobId = Guid.NewGuid();
        var control = fx.Sandbox.ControlDirectory(jobId);
        Directory.CreateDirectory(control);
        File.WriteAllText(Path.Combine(control, "intake.sock.stale"), "");
        try
        {
            var report = await teardown.DestroyAsync(new ForgetfulBackend(fx.Sandbox), new RunnerRef(jobId, $"runner-{jobId:N}", null), _ => Task.CompletedTask, default);

            Assert.NotNull(report);
            Assert.False(report.Passed);
            Assert.Equal(3, report.Attempts);
            Assert.Contains(report.Checks, c => c is { Name: "control", Passed: false } && c.Found!.Contains(control));
            Assert.Contains(report.Checks, c => c is { Name: "job-directory", Passed: false });
            Assert.Contains(report.Checks, c => c is { Name: "workspace", Passed: true });

            // Once the real teardown removed it, the same check passes.
            var again = await teardown.DestroyAsync(fx.Sandbox, new RunnerRef(jobId, $"runner-{jobId:N}", null), _ => Task.CompletedTask, default);
            Assert.True(again!.Passed, string.Join("; ", again.Checks.Where(c => !c.Passed).Select(c => $"{c.Name}: {c.Found}")));
            Assert.All(await verifier.VerifyAsync(new RunnerRef(jobId, $"runner-{jobId:N}", null), default), c => Assert.True(c.Passed, c.Name));
        }
        finally
        {
            EphemeralCI.Provisioner.Backends.LocalSandbox.Sandbox.DeleteTree(fx.Sandbox.JobDirectory(jobId));
        }
    }

    [Fact]
    public async Task A_jobs_nftables_table_left_behind_is_found_and_one_removed_is_not()
    {
        if (!Environment.IsPrivilegedProcess || !File.Exists(EphemeralCI.Provisioner.Backends.LocalSandbox.Network.EgressNetwork.NftPath)) return; // listing needs root and nftables
        var verifier = fx.Host.Services.GetServices<ITeardownVerifier>().OfType<LocalTeardownVerifier>().Single();
        var installation = fx.Host.Services.GetRequiredService<EphemeralCI.Provisioner.Ownership.Installation>();
        var jobId = Guid.NewGuid();
        var table = EphemeralCI.Provisioner.Backends.LocalSandbox.Network.JobNetworkNames.For(installation.Id.ToString("N"), jobId).Table;
        // Made and removed with the nft tool; seen by the check through libnftables in process.
        Nft("add", "table", "inet", table);
        try
        {
            var left = Assert.Single(await verifier.VerifyAsync(new RunnerRef(jobId, $"runner-{jobId:N}", null, DateTimeOffset.UtcNow), default), c => c.Name == "nftables");
            Assert.False(left.Passed);
            Assert.Equal($"table inet {table} exists", left.Found);
        }
        finally
        {
            Nft("delete", "table", "inet", table);
        }
        var gone = Assert.Single(await verifier.VerifyAsync(new RunnerRef(jobId, $"runner-{jobId:N}", null, DateTimeOffset.UtcNow), default), c => c.Name == "nftables");
        Assert.True(gone.Passed, gone.Found);
    }

    private static void Nft(params string[] args)
    {
        var start = new ProcessStartInfo(EphemeralCI.Provisioner.Backends.LocalSandbox.Network.EgressNetwork.NftPath) { UseShellExecute = false, RedirectStandardError = true };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var nft = Process.Start(start)!;
        var error = nft.StandardError.ReadToEnd();
        nft.WaitForExit();
        Assert.True(nft.ExitCode == 0, $"nft {string.Join(' ', args)}: {error}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_process_with_the_runners_id_is_found_whether_the_runner_was_made_by_this_process_or_before_it(bool madeBefore)
    {
        // Made by this process: only processes started since it are read in full; made before (adopted): all of them.
        var verifier = fx.Host.Services.GetServices<ITeardownVerifier>().OfType<LocalTeardownVerifier>().Single();
        var jobId = Guid.NewGuid();
        var createdAt = madeBefore ? Process.GetCurrentProcess().StartTime.ToUniversalTime().AddMinutes(-5) : DateTimeOffset.UtcNow;
        var start = new ProcessStartInfo("sleep") { ArgumentList = { "600" }, UseShellExecute = false };
        start.Environment["ECI_RUNNER_ID"] = $"runner-{jobId:N}";
        using var process = Process.Start(start)!;
        try
        {
            var checks = await verifier.VerifyAsync(new RunnerRef(jobId, $"runner-{jobId:N}", null, createdAt), default);
            var processes = Assert.Single(checks, c => c.Name == "processes");
            Assert.False(processes.Passed);
            Assert.Contains($"pid {process.Id} (sleep, its id in the environment)", processes.Found);
        }
        finally
        {
            process.Kill();
        }
    }

    /// <summary>Kills like the real backend but leaves the job's folders: the check must not trust it.</summary>
    private sealed class ForgetfulBackend(LocalSandboxBackend real) : IRunnerBackend
    {
        public string Name => real.Name;
        public string? MissingPrerequisite() => null;
        public Task<RunnerHandle> StartAsync(RunnerLaunch launch, CancellationToken ct) => throw new NotSupportedException();
        public Task KillAsync(RunnerRef runner, CancellationToken ct) => real.KillAsync(runner, ct);
        public Task DestroyAsync(RunnerRef runner, CancellationToken ct) => Task.CompletedTask;
        public bool IsAlive(RunnerRef runner) => false;
        public Task RemoveLeftoversAsync(IReadOnlySet<Guid> keep, CancellationToken ct) => Task.CompletedTask;
    }
}
