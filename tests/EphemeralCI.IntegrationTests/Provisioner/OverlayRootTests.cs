using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Provisioner.Infrastructure;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>A template with a base root filesystem: the job gets a private overlay of it; its writes vanish with it.</summary>
[Collection(ProvisionerCollection.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class OverlayRootTests(ProvisionerFixture fx)
{
    [Fact]
    public async Task Writes_to_usr_and_etc_land_in_the_jobs_own_layer_and_vanish_with_it()
    {
        var jobId = Guid.NewGuid();
        var tag = jobId.ToString("N");
        var job = fx.Intake.Register(jobId, new StepSpec
        {
            Name = "write",
            Run = $"cat /etc/{ProvisionerFixture.BaseMarker}\n" +
                  $"echo mine > /usr/eci-{tag} && echo wrote-usr\n" +
                  $"echo mine > /etc/eci-{tag} && echo wrote-etc\n" +
                  $"echo 'evil:x:0:0::/:/bin/sh' >> /etc/passwd && echo wrote-passwd\n" +
                  $"cat /usr/eci-{tag}\n" +
                  "while [ ! -f /workspace/go ]; do sleep 0.05; done",
        });
        await fx.PublishAsync(fx.RunJob(jobId, template: ProvisionerFixture.OverlayTemplate));
        var workspace = Path.Combine(fx.WorkRoot, jobId.ToString(), "workspace");
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(job.Log.Contains("wrote-passwd")), () => $"the job to write; log:\n{job.Log}");

        // While it runs: the write is in the job's upper layer, not in the host's /usr nor the base.
        Assert.False(File.Exists($"/usr/eci-{tag}"));
        Assert.False(File.Exists(Path.Combine(fx.BaseRoot, "etc", $"eci-{tag}")));
        Assert.True(File.Exists(Path.Combine(fx.WorkRoot, jobId.ToString(), "layers", "usr", "upper", $"eci-{tag}")));
        Assert.Contains($"eci-{jobId}", File.ReadAllText("/proc/self/mountinfo"));
        var ns = HostTraces.NetworkNamespaceOf(jobId);
        await File.WriteAllTextAsync(Path.Combine(workspace, "go"), "");
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
        Assert.Contains("from-the-base", job.Log);
        Assert.Contains("wrote-usr", job.Log);
        Assert.Contains("wrote-etc", job.Log);
        Assert.DoesNotContain("evil:", await File.ReadAllTextAsync(Path.Combine(fx.BaseRoot, "etc", "passwd")));
        Assert.False(File.Exists($"/usr/eci-{tag}"));
        HostTraces.AssertNoneLeft(fx.Sandbox, fx.WorkRoot, jobId, ns);

        // The next job on the same base sees the base, not the last job's layer.
        var nextId = Guid.NewGuid();
        var next = fx.Intake.Register(nextId, new StepSpec
        {
            Name = "look",
            Run = $"[ -e /usr/eci-{tag} ] && echo found-usr; [ -e /etc/eci-{tag} ] && echo found-etc; grep -c '^evil:' /etc/passwd || true; echo probe-done",
        });
        await fx.PublishAsync(fx.RunJob(nextId, template: ProvisionerFixture.OverlayTemplate));
        await fx.WaitForStateAsync(nextId, RunnerState.Destroyed);
        Assert.Contains("probe-done", next.Log);
        Assert.DoesNotContain("found-", next.Log);
        Assert.Contains("\n0\n", next.Log);
        HostTraces.AssertNoneLeft(fx.Sandbox, fx.WorkRoot, nextId, null);
    }
}
