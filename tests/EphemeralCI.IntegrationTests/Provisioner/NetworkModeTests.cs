using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using EphemeralCI.Provisioner.Backends.LocalSandbox.Network;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Ownership;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>
/// The three network modes of the local sandbox on real bubblewrap, iproute2 and nftables:
/// <c>none</c> (the steps reach nothing, not even the control plane), <c>control-plane</c> (the
/// relay sockets only) and <c>egress</c> (outbound, never the host or a private range).
/// </summary>
[Collection(ProvisionerCollection.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class NetworkModeTests(ProvisionerFixture fx)
{
    // Each probe prints "<label> REACHED <greeting>" or "<label> BLOCKED"; all run at once so
    // dropped packets (which only time out) cost one timeout, not one each.
    private const string Probe =
        "probe() { if out=$(timeout 4 bash -c \"exec 3<>/dev/tcp/$2/$3 && head -n1 <&3\" 2>/dev/null) && [ -n \"$out\" ]; then echo \"$1 REACHED $out\"; else echo \"$1 BLOCKED\"; fi; }\n";

    // The step asks the intake's socket for anything; an HTTP status means it got through.
    private const string AskControlPlane =
        "code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --unix-socket /run/eci/intake.sock http://intake/health || true); echo \"control-plane answered: [$code]\"\n";

    private static StepSpec Step(string name, string run) => new() { Name = name, Run = run };

    private async Task<FakeJob> RunAsync(string template, string script)
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("net", script));
        await fx.PublishAsync(fx.RunJob(jobId, template: template));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);
        var runner = await fx.RunnerAsync(jobId);
        Assert.True(job.Completion.Task.IsCompleted, $"the agent never reported: runner {runner?.State} {runner?.Reason}; log:\n{job.Log}");
        Assert.True((await job.Completion.Task).Succeeded, job.Log);
        return job;
    }

    [Fact]
    public async Task In_network_none_and_control_plane_the_agent_runs_the_job_but_its_steps_reach_not_even_the_control_plane()
    {
        var isolated = await RunAsync(ProvisionerFixture.NoNetworkTemplate, AskControlPlane + "ip -o link | cut -d: -f2 | tr -d ' ' | sort | tr '\\n' ' '; echo");
        var controlPlane = await RunAsync("default", AskControlPlane);

        // The job ran (the agent fetched it and reported through the sockets), yet its step got no answer.
        Assert.Contains("control-plane answered: [000]", isolated.Log);
        Assert.Contains("lo ", isolated.Log);
        Assert.DoesNotContain("eth0", isolated.Log);
        // Under control-plane too: the sockets serve the agent alone in every mode (issue 14, item 6).
        Assert.Contains("control-plane answered: [000]", controlPlane.Log);
    }

    [Fact]
    public async Task With_egress_a_job_reaches_the_internet_but_never_the_host_nor_private_ranges_and_leaves_nothing_behind()
    {
        using var net = new TestNetworks();
        var jobId = Guid.NewGuid();
        var script = Probe +
            $"probe internet {net.InternetAddress} {net.InternetPort} &\n" +
            $"probe host-loopback 127.0.0.1 {net.HostPort} &\n" +
            $"probe host-private {net.HostPrivateAddress} {net.HostPort} &\n" +
            $"probe metadata {TestNetworks.MetadataAddress} {net.HostPort} &\n" +
            $"probe host-public {net.HostPublicAddress} {net.HostAnyPort} &\n" +
            $"probe gateway $(ip route show default | cut -d' ' -f3) {net.HostAnyPort} &\n" +
            "wait\n";
        var job = fx.Intake.Register(jobId, Step("net", script));
        var names = JobNetworkNames.For(fx.Host.Services.GetRequiredService<Installation>().Id.ToString("N"), jobId);

        await fx.PublishAsync(fx.RunJob(jobId, template: ProvisionerFixture.EgressTemplate));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);
        var runner = await fx.RunnerAsync(jobId);
        Assert.True(job.Completion.Task.IsCompleted, $"the agent never reported: runner {runner?.State} {runner?.Reason}; log:\n{job.Log}");

        var log = job.Log;
        Assert.Contains($"internet REACHED {TestNetworks.Greeting}", log);
        foreach (var label in new[] { "host-loopback", "host-private", "metadata", "host-public", "gateway" })
        {
            Assert.Contains($"{label} BLOCKED", log);
        }
        // And from the host's side: not one connection reached a host listener.
        Assert.Equal(0, Volatile.Read(ref net.HostConnections));

        // Nothing of the job's network is left: namespace, veth, nftables table, route.
        Assert.False(File.Exists(Path.Combine(EgressNetwork.NetnsDirectory, names.Namespace)), "the job's network namespace is deleted");
        Assert.False(Directory.Exists($"/sys/class/net/{names.HostInterface}"), "the job's veth is deleted");
        Assert.DoesNotContain(names.Table, TestNetworks.Run("nft", "list", "tables"));
        Assert.DoesNotContain(names.HostInterface, TestNetworks.Ip("route show"));
        Assert.DoesNotContain(names.HostInterface, TestNetworks.Ip("link show"));
    }
}
