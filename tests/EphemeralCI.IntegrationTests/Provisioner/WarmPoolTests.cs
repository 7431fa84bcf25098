using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>
/// The warm pool of the fixture's <c>warm</c> template (one sandbox): each warm sandbox serves exactly
/// one job and is destroyed with it, the pool starts a new one, and a job on a warm sandbox still gets
/// its own token and a workspace no job has used.
/// </summary>
[Collection(ProvisionerCollection.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class WarmPoolTests(ProvisionerFixture fx)
{
    private const string WaitForGo = "while [ ! -f /workspace/go ]; do sleep 0.05; done\n";
    private WarmPool Pool => fx.Host.Services.GetRequiredService<WarmPool>();

    private async Task<Guid> ReadyAsync(Guid? not = null)
    {
        Guid ready = default;
        await ProvisionerFixture.WaitUntilAsync(() =>
        {
            var ids = Pool.Ready(ProvisionerFixture.WarmTemplate);
            if (ids.Count == 1 && ids[0] != not && fx.Sandbox.IsWarmAlive(ids[0])) ready = ids[0];
            return Task.FromResult(ready != default);
        }, "a warm sandbox to be ready");
        return ready;
    }

    /// <summary>Runs a job on the warm template, parked at its first step until the test has looked at it.</summary>
    private async Task<(FakeJob Job, Guid Sandbox)> RunOnWarmAsync(Guid jobId, string script)
    {
        var job = fx.Intake.Register(jobId, new StepSpec { Name = "warm", Run = WaitForGo + script });
        await fx.PublishAsync(fx.RunJob(jobId, template: ProvisionerFixture.WarmTemplate));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(job.Events.Any(e => e.Type == JobEventTypes.StepStarted)),
            () => $"the job to start; log:\n{job.Log}");
        var sandbox = fx.Sandbox.SandboxIdOf(jobId);
        await File.WriteAllTextAsync(Path.Combine(fx.Sandbox.WorkspaceDirectory(jobId), "go"), "");
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);
        Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
        return (job, sandbox);
    }

    [Fact]
    public async Task The_pools_status_names_each_warm_template_its_size_and_the_sandboxes_ready()
    {
        await ReadyAsync();
        // The same pool, as the all-in-one server's web UI reads it through the contract.
        var status = fx.Host.Services.GetRequiredService<EphemeralCI.Contracts.Runner.IWarmPoolStatus>();
        Assert.Same(Pool, status);
        var warm = Assert.Single(status.Current(), p => p.Template == ProvisionerFixture.WarmTemplate);
        Assert.Equal(new EphemeralCI.Contracts.Runner.WarmPoolState(ProvisionerFixture.WarmTemplate, "local", 1, 1), warm);
        // Templates without a pool are not listed.
        Assert.All(status.Current(), p => Assert.True(p.Target > 0));
    }

    [Fact]
    public async Task A_warm_sandbox_serves_one_job_then_is_destroyed_and_replaced_and_the_next_job_gets_a_fresh_one()
    {
        var first = await ReadyAsync();
        var jobA = Guid.NewGuid();
        var (a, usedByA) = await RunOnWarmAsync(jobA, "echo from-a > /workspace/left-by-a; echo \"job=$ECI_JOB_ID\"; ls -A /workspace");

        Assert.Equal(first, usedByA); // it ran in the warm sandbox, not a cold one
        Assert.Contains($"job={jobA}", a.Log);
        // One use: the sandbox is gone with the job — process, directory, cgroup.
        Assert.False(fx.Sandbox.IsWarmAlive(first));
        Assert.Empty(SandboxProcesses.Of(first));
        Assert.False(Directory.Exists(Path.Combine(fx.WorkRoot, first.ToString())));
        Assert.All(fx.Sandbox.JobCgroups.Layout.JobDirectories(first), dir => Assert.False(Directory.Exists(dir), dir));

        // Refill: a new sandbox, never the used one.
        var second = await ReadyAsync(not: first);
        var jobB = Guid.NewGuid();
        var (b, usedByB) = await RunOnWarmAsync(jobB, "echo \"job=$ECI_JOB_ID\"; echo \"files:[$(ls -A /workspace | grep -v '^go$' | tr '\\n' ' ')]\"");

        Assert.Equal(second, usedByB);
        Assert.Contains($"job={jobB}", b.Log);
        Assert.Contains("files:[]", b.Log); // nothing of job A, and nothing from before the job
        // Each agent fetched its own job once, with its own token (the fake intake finds the job by the token's claim).
        Assert.Equal((1, 1), (a.Fetches, b.Fetches));
    }

    [Fact]
    public async Task Cancelling_a_job_on_a_warm_sandbox_kills_that_sandbox()
    {
        var warm = await ReadyAsync();
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, new StepSpec { Name = "forever", Run = "sleep 600" });
        await fx.PublishAsync(fx.RunJob(jobId, template: ProvisionerFixture.WarmTemplate));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(job.Events.Any(e => e.Type == JobEventTypes.StepStarted)),
            () => $"the job to start; log:\n{job.Log}");
        Assert.Equal(warm, fx.Sandbox.SandboxIdOf(jobId));

        await fx.PublishAsync(new CancelJob(jobId, DateTimeOffset.UtcNow));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        Assert.Equal(RunnerOutcome.Cancelled, (await fx.RunnerAsync(jobId))!.Outcome);
        Assert.Empty(SandboxProcesses.Of(warm));
        Assert.False(Directory.Exists(Path.Combine(fx.WorkRoot, warm.ToString())));
    }
}
