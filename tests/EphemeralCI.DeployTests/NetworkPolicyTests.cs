using System.Net;
using EphemeralCI.DeployTests.Rendering;
using EphemeralCI.Provisioner.Backends.Kubernetes;
using k8s.Models;
using YamlDotNet.Serialization;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>
/// Who may talk to whom, decided by evaluating the rendered NetworkPolicies: runners reach DNS,
/// the control plane's service ports and (when their template asks) the internet, never private
/// ranges, metadata endpoints or the cluster's pod and service ranges.
/// </summary>
public sealed class NetworkPolicyTests
{
    public static TheoryData<string> Overlays => [.. Kustomize.Overlays];
    public static TheoryData<string> Targets => [.. Manifests.Targets];

    private static readonly IPAddress PublicAddress = IPAddress.Parse("203.0.113.10");

    // A runner pod as the Kubernetes backend labels it (network mode from the template); its IP inside 10/8 as pod IPs usually are.
    internal static PodAddress Runner(bool internet) => RunnerWithNetwork(internet ? "egress" : "control-plane");

    private static PodAddress RunnerWithNetwork(string? mode) => new(RenderedManifests.Runners, new Dictionary<string, string>
    {
        [RunnerLabels.ManagedBy] = RunnerLabels.ManagedByValue,
        [RunnerLabels.Component] = RunnerLabels.ComponentValue,
        [RunnerLabels.JobId] = Guid.NewGuid().ToString(),
        ["job-name"] = "eci-x",
    }.Concat(mode is null ? [] : [new KeyValuePair<string, string>(RunnerLabels.Network, mode)]).ToDictionary(), IPAddress.Parse("10.244.1.7"));

    internal static PodAddress Service(RenderedManifests m, string name, string ip = "10.244.2.9") =>
        new(RenderedManifests.ControlPlane, m.Deployment(name).Spec.Template.Metadata.Labels, IPAddress.Parse(ip));

    private static readonly PodAddress Dns = new("kube-system", new Dictionary<string, string> { ["k8s-app"] = "kube-dns" }, IPAddress.Parse("10.244.0.3"));
    internal static readonly PodAddress SomeOtherWorkload = new("default", new Dictionary<string, string> { ["app"] = "billing" }, IPAddress.Parse("10.244.3.3"));

    [Theory]
    [MemberData(nameof(Targets))]
    public void Both_namespaces_deny_everything_by_default(string target)
    {
        var manifests = Manifests.Render(target);
        foreach (var ns in new[] { RenderedManifests.ControlPlane, RenderedManifests.Runners })
        {
            Assert.Contains(manifests.NetworkPolicies(ns), p =>
                p.Spec.PodSelector.MatchLabels is null or { Count: 0 } && p.Spec.PodSelector.MatchExpressions is null or { Count: 0 }
                && p.Spec.PolicyTypes.Order().SequenceEqual(["Egress", "Ingress"])
                && p.Spec.Ingress is null or { Count: 0 } && p.Spec.Egress is null or { Count: 0 });
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Runners_reach_dns_and_the_control_plane_services_and_nothing_else_inside_the_cluster(string target)
    {
        var m = Manifests.Render(target);
        var net = new NetworkPolicyEvaluator(m);
        foreach (var internet in new[] { false, true })
        {
            var runner = Runner(internet);
            Assert.True(net.EgressAllowed(runner, Dns, 53, "UDP"));
            Assert.True(net.EgressAllowed(runner, Dns, 53, "TCP"));
            foreach (var name in new[] { "intake", "secrets-broker", "cache" })
            {
                Assert.True(net.EgressAllowed(runner, Service(m, name), 8080), $"runner → {name}:8080");
                Assert.True(net.IngressAllowed(Service(m, name), runner, 8080), $"{name} refuses runners");
                Assert.False(net.EgressAllowed(runner, Service(m, name), 5432), $"runner → {name}:5432");
            }
            Assert.False(net.EgressAllowed(runner, Service(m, "provisioner"), 8080), "runner → provisioner");
            Assert.False(net.EgressAllowed(runner, SomeOtherWorkload, 80), "runner → another workload of the cluster");
            Assert.False(net.EgressAllowed(runner, Runner(internet), 8080), "runner → another runner");
            Assert.False(net.EgressAllowed(runner, Dns, 80), "runner → DNS pod on another port");
            // Nothing reaches into a runner, not even another runner or the control plane.
            Assert.False(net.IngressAllowed(runner, Runner(internet), 22));
            Assert.False(net.IngressAllowed(runner, Service(m, "provisioner"), 8080));
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Only_runners_labelled_for_egress_reach_the_internet(string target)
    {
        var net = new NetworkPolicyEvaluator(Manifests.Render(target));
        Assert.True(net.EgressAllowed(Runner(internet: true), PublicAddress, 443));
        Assert.True(net.EgressAllowed(Runner(internet: true), IPAddress.Parse("2001:db8::1"), 443));
        Assert.False(net.EgressAllowed(Runner(internet: false), PublicAddress, 443));
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void A_pod_without_a_network_mode_the_policies_know_reaches_nothing(string target)
    {
        var m = Manifests.Render(target);
        var net = new NetworkPolicyEvaluator(m);
        foreach (var pod in new[] { RunnerWithNetwork(null), RunnerWithNetwork("internet"), RunnerWithNetwork("none") })
        {
            Assert.False(net.EgressAllowed(pod, Dns, 53, "UDP"));
            Assert.False(net.EgressAllowed(pod, Service(m, "intake"), 8080));
            Assert.False(net.EgressAllowed(pod, PublicAddress, 443));
        }
    }

    [Theory]
    [InlineData("169.254.169.254")] // AWS, GCP, Azure, OpenStack metadata
    [InlineData("169.254.170.2")]   // ECS task metadata
    [InlineData("100.100.100.200")] // Alibaba Cloud metadata
    [InlineData("10.0.0.1")]
    [InlineData("172.16.0.1")]
    [InlineData("172.31.255.254")]
    [InlineData("192.168.1.1")]
    [InlineData("127.0.0.1")]
    [InlineData("fd00:ec2::254")]   // AWS metadata over IPv6
    [InlineData("fe80::1")]
    [InlineData("::1")]
    public void No_runner_reaches_private_ranges_or_metadata_endpoints(string address)
    {
        foreach (var target in Manifests.Targets)
        {
            var net = new NetworkPolicyEvaluator(Manifests.Render(target));
            foreach (var port in new[] { 80, 443, 8080 })
            {
                Assert.False(net.EgressAllowed(Runner(internet: true), IPAddress.Parse(address), port), $"{target}: runner → {address}:{port}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void No_runner_reaches_the_cluster_ranges_the_overlay_names(string overlay)
    {
        // The overlay's parameters: JSON patches adding the pod and service CIDRs to the exceptions.
        var file = Path.Combine(Repository.Root, "deploy", "kubernetes", overlay, "cluster-cidrs.yaml");
        var ops = new DeserializerBuilder().Build().Deserialize<List<Dictionary<string, string>>>(File.ReadAllText(file));
        var ranges = ops.Select(op => IPNetwork.Parse(op["value"])).ToList();
        Assert.True(ranges.Count >= 2, "an overlay names at least the pod and the service range");
        var net = new NetworkPolicyEvaluator(Manifests.Render(overlay));
        var internet = Manifests.Render(overlay).NetworkPolicies(RenderedManifests.Runners).Single(p => p.Metadata.Name == "allow-internet-egress");
        var except = internet.Spec.Egress.SelectMany(r => r.To).Where(p => p.IpBlock is not null).SelectMany(p => p.IpBlock.Except).ToList();
        foreach (var range in ranges)
        {
            Assert.Contains(range.ToString(), except);
            Assert.False(net.EgressAllowed(Runner(internet: true), range.BaseAddress, 443), $"{overlay}: runner → {range}");
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void The_control_plane_accepts_only_the_traffic_it_serves(string target)
    {
        var m = Manifests.Render(target);
        var net = new NetworkPolicyEvaluator(m);
        // The intake is the public API: anyone, on its port only.
        Assert.True(net.IngressAllowed(Service(m, "intake"), SomeOtherWorkload, 8080));
        Assert.False(net.IngressAllowed(Service(m, "intake"), SomeOtherWorkload, 9090));
        // The broker and the cache: the control plane and the runners, not the rest of the cluster.
        foreach (var name in new[] { "secrets-broker", "cache" })
        {
            Assert.True(net.IngressAllowed(Service(m, name), Service(m, "intake", "10.244.2.10"), 8080));
            Assert.False(net.IngressAllowed(Service(m, name), SomeOtherWorkload, 8080), $"another workload → {name}");
        }
        // The provisioner serves nothing (kubelet probes are always allowed by Kubernetes).
        Assert.False(net.IngressAllowed(Service(m, "provisioner"), Service(m, "intake"), 8080));
        Assert.False(net.IngressAllowed(Service(m, "provisioner"), Runner(internet: true), 8080));
        // Only the provisioner may reach the Kubernetes API server's usual port.
        Assert.True(net.EgressAllowed(Service(m, "provisioner"), PublicAddress, 6443));
        Assert.False(net.EgressAllowed(Service(m, "intake"), PublicAddress, 6443));
        // The services reach their backing services by port, and each other.
        Assert.True(net.EgressAllowed(Service(m, "intake"), PublicAddress, 5432));
        Assert.True(net.EgressAllowed(Service(m, "provisioner"), Service(m, "secrets-broker"), 8080));
        Assert.False(net.EgressAllowed(Service(m, "intake"), PublicAddress, 22));
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void The_runners_namespace_enforces_the_restricted_pod_security_standard(string target)
    {
        var labels = Manifests.Render(target).Namespace(RenderedManifests.Runners).Metadata.Labels;
        foreach (var mode in new[] { "enforce", "audit", "warn" })
        {
            Assert.Equal("restricted", labels[$"pod-security.kubernetes.io/{mode}"]);
        }
        Assert.Equal("restricted", Manifests.Render(target).Namespace(RenderedManifests.ControlPlane).Metadata.Labels["pod-security.kubernetes.io/enforce"]);
    }

    [Fact]
    public void The_evaluator_opens_pods_no_policy_selects_and_honours_exceptions()
    {
        // Guards the evaluator the tests above rely on, on a hand-made policy set.
        var manifests = Kustomize.Load("""
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: p, namespace: a}
            spec:
              podSelector: {matchLabels: {role: x}}
              policyTypes: [Egress]
              egress:
                - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
                  ports: [{protocol: TCP, port: 443}]
            """);
        var net = new NetworkPolicyEvaluator(manifests);
        var x = new PodAddress("a", new Dictionary<string, string> { ["role"] = "x" }, IPAddress.Parse("10.1.1.1"));
        var y = new PodAddress("a", new Dictionary<string, string> { ["role"] = "y" }, IPAddress.Parse("10.1.1.2"));
        Assert.True(net.EgressAllowed(x, PublicAddress, 443));
        Assert.False(net.EgressAllowed(x, PublicAddress, 80));
        Assert.False(net.EgressAllowed(x, IPAddress.Parse("10.9.9.9"), 443));
        Assert.True(net.EgressAllowed(y, IPAddress.Parse("10.9.9.9"), 80)); // not selected: open
        Assert.True(net.IngressAllowed(x, y, 80)); // no ingress policy: open
    }
}
