using System.Net;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using EphemeralCI.Provisioner.Backends.LocalSandbox.Network;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner;

public sealed class EgressRulesTests
{
    private static readonly Guid JobId = Guid.Parse("11111111-2222-3333-4444-555555555555");

    [Fact]
    public void Names_fit_the_kernel_limits_and_lead_back_to_the_job_and_instance()
    {
        var names = JobNetworkNames.For("eci-test-1", JobId);
        Assert.True(names.HostInterface.Length <= 15, names.HostInterface);
        Assert.Equal(JobId, JobNetworkNames.JobOf(names.Namespace, JobNetworkNames.NamespacePrefix("eci-test-1")));
        Assert.Equal(JobId, JobNetworkNames.JobOf(names.Table, JobNetworkNames.TablePrefix("eci-test-1")));
        // Another provisioner on the same machine never takes these for its own leftovers.
        Assert.Null(JobNetworkNames.JobOf(names.Namespace, JobNetworkNames.NamespacePrefix("eci-test-2")));
        Assert.NotEqual(names.HostInterface, JobNetworkNames.For("eci-test-2", JobId).HostInterface);
    }

    [Fact]
    public void The_pool_hands_out_distinct_slash_30s_and_takes_them_back()
    {
        var pool = new EgressAddressPool("10.213.0.0/29", hostAddresses: () => new HashSet<IPAddress>()); // two jobs
        var a = pool.Rent(Guid.NewGuid());
        var bJob = Guid.NewGuid();
        var b = pool.Rent(bJob);
        Assert.Equal((IPAddress.Parse("10.213.0.1"), IPAddress.Parse("10.213.0.2")), (a.HostAddress, a.JobAddress));
        Assert.Equal((IPAddress.Parse("10.213.0.5"), IPAddress.Parse("10.213.0.6")), (b.HostAddress, b.JobAddress));
        Assert.Equal(b, pool.Rent(bJob)); // renting again for the same job is the same lease
        var full = Assert.Throws<RunnerStartException>(() => pool.Rent(Guid.NewGuid()));
        Assert.Contains("EgressAddressPool", full.Message);
        pool.Return(bJob);
        Assert.Equal(b.JobAddress, pool.Rent(Guid.NewGuid()).JobAddress);
    }

    [Fact]
    public void Installations_sharing_a_pool_start_apart_and_skip_the_subnets_a_neighbour_holds_on_the_host()
    {
        var (first, second) = (Guid.Parse("00000001-0000-0000-0000-000000000000"), Guid.Parse("00000300-0000-0000-0000-000000000000"));
        IReadOnlySet<IPAddress> None() => new HashSet<IPAddress>();
        var a = new EgressAddressPool("10.213.0.0/16", first, None).Rent(Guid.NewGuid());
        var b = new EgressAddressPool("10.213.0.0/16", second, None).Rent(Guid.NewGuid());
        Assert.Equal(IPAddress.Parse("10.213.0.5"), a.HostAddress);   // index 1
        Assert.Equal(IPAddress.Parse("10.213.12.1"), b.HostAddress);  // index 0x300 = 768, 768 × 4 = 12 × 256
        Assert.NotEqual(a.HostAddress, b.HostAddress);

        // The neighbour's veth holds 10.213.0.5 on this host: this pool takes the next subnet.
        var taken = new HashSet<IPAddress> { IPAddress.Parse("10.213.0.5") };
        var c = new EgressAddressPool("10.213.0.0/16", first, () => taken).Rent(Guid.NewGuid());
        Assert.Equal(IPAddress.Parse("10.213.0.9"), c.HostAddress);
    }

    [Theory]
    [InlineData("10.213.0.0")]
    [InlineData("10.213.0.1/16")]
    [InlineData("10.213.0.0/31")]
    [InlineData("fd00::/64")]
    public void A_bad_pool_is_refused_with_the_reason(string cidr) =>
        Assert.Throws<ArgumentException>(() => new EgressAddressPool(cidr));

    [Fact]
    public void The_ruleset_drops_the_host_private_and_metadata_ranges_and_only_masquerades_the_job()
    {
        var names = JobNetworkNames.For("i", JobId);
        var lease = new EgressAddressPool("10.213.0.0/16").Rent(JobId);
        var rules = EgressRules.Ruleset(names, lease, "10.213.0.0/16", [IPAddress.Parse("10.255.255.53"), IPAddress.Loopback]);

        Assert.StartsWith($"table inet {names.Table} {{", rules);
        Assert.Contains($"iifname \"{names.HostInterface}\" drop", rules); // input: the host itself
        Assert.Contains($"oifname \"{names.HostInterface}\" ct state established,related accept", rules);
        Assert.Contains($"oifname \"{names.HostInterface}\" drop", rules);
        foreach (var range in new[] { "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "127.0.0.0/8" })
        {
            Assert.Contains(range, rules);
        }
        Assert.Contains("meta nfproto ipv6 drop", rules);
        Assert.Contains($"ip saddr != {lease.JobAddress} drop", rules);
        Assert.Contains($"ip saddr {lease.JobAddress} oifname != \"{names.HostInterface}\" masquerade", rules);
        // The host's resolver is the one private exception, port 53 only; a loopback resolver is never one.
        Assert.Contains("ip daddr { 10.255.255.53 } meta l4proto { tcp, udp } th dport 53 accept", rules);
        Assert.DoesNotContain("127.0.0.1", rules);
    }

    [Fact]
    public void Egress_shares_the_prepared_network_namespace_and_the_other_modes_unshare_it()
    {
        var layout = new SandboxLayout(JobId, "/w/ws", "/w/ctl", "/app/agent", "/usr/share/dotnet/dotnet");
        Assert.DoesNotContain("--share-net", SandboxCommandBuilder.Build(layout, _ => false, _ => null));
        Assert.DoesNotContain("--share-net", SandboxCommandBuilder.Build(layout with { Network = "none" }, _ => false, _ => null));
        var egress = SandboxCommandBuilder.Build(layout with { Network = "egress" }, _ => false, _ => null);
        Assert.True(egress.ToList().IndexOf("--share-net") > egress.ToList().IndexOf("--unshare-all"), "--share-net must follow --unshare-all");

        var files = new SandboxLaunchFiles("/w/bwrap.args", "/w/seccomp.bpf", "/w/agent-tmp");
        var argv = SandboxCommandBuilder.JoinCgroupThenExec(["/sys/fs/cgroup/x/cgroup.procs"], "/usr/bin/bwrap", ["--x", "--", "true"], files, ["/usr/bin/nsenter", "--net=/run/netns/n", "--"]);
        Assert.Equal(["/usr/bin/nsenter", "--net=/run/netns/n", "--", "/usr/bin/bwrap", "--args", "3", "--", "true"], argv.Skip(3));
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void Host_resolvers_come_from_resolv_conf_without_loopback_ones()
    {
        var file = Path.GetTempFileName();
        File.WriteAllText(file, "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver\tfd00::53\nsearch example\n");
        try
        {
            Assert.Equal([IPAddress.Parse("10.0.0.2"), IPAddress.Parse("fd00::53")], EgressNetwork.HostResolvers(file));
        }
        finally
        {
            File.Delete(file);
        }
    }
}
