using EphemeralCI.DeployTests.Rendering;
using k8s.Models;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>
/// Issue 20 item 5: the broker's and the cache's operator routes (administration, audit, job-token
/// minting, operator-only secrets) answer only on their admin listener (<c>AdminListener:Port</c>),
/// and the NetworkPolicies open that port to the provisioner, the cache and the intake alone, never to runners.
/// Each invariant is a list of problems that must be empty, and is shown to catch its breakage.
/// </summary>
public sealed class AdminListenerTests
{
    public static TheoryData<string> Targets => [.. Manifests.Targets];

    /// <summary>The services whose operator routes move to an admin listener.</summary>
    private static readonly string[] AdminServices = ["secrets-broker", "cache"];

    [Theory]
    [MemberData(nameof(Targets))]
    public void The_broker_and_the_cache_serve_operator_routes_on_an_admin_listener_their_callers_use(string target)
    {
        Assert.Empty(WiringProblems(Manifests.Render(target)));
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Only_the_provisioner_the_cache_and_the_intake_reach_the_brokers_admin_listener_only_the_intake_the_caches_and_runners_reach_none(string target)
    {
        var m = Manifests.Render(target);
        List<string> expected =
            ["cache → secrets-broker:admin (egress)", "cache:admin ← intake (ingress)", "intake → cache:admin (egress)", "intake → secrets-broker:admin (egress)",
             "provisioner → secrets-broker:admin (egress)",
             "secrets-broker:admin ← cache (ingress)", "secrets-broker:admin ← intake (ingress)", "secrets-broker:admin ← provisioner (ingress)"];
        // The GitHub Actions adapter reads the App's secrets there (its broker token opens ECI_GITHUB_* only); never the cache's.
        if (Manifests.WithGitHubActions.Contains(target)) expected.AddRange(["github-actions → secrets-broker:admin (egress)", "secrets-broker:admin ← github-actions (ingress)"]);
        Assert.Equal(expected.Order(StringComparer.Ordinal), AdminPaths(m).Order(StringComparer.Ordinal));

        // End to end (both ends' policies): runners of either network mode reach no admin listener,
        // but still reach the http port of the same pods.
        var net = new NetworkPolicyEvaluator(m);
        foreach (var name in AdminServices)
        {
            var service = NetworkPolicyTests.Service(m, name);
            foreach (var internet in new[] { false, true })
            {
                var runner = NetworkPolicyTests.Runner(internet);
                Assert.False(net.EgressAllowed(runner, service, AdminPort(m, name)) && net.IngressAllowed(service, runner, AdminPort(m, name)), $"runner → {name} admin");
                Assert.True(net.EgressAllowed(runner, service, HttpPort(m, name)) && net.IngressAllowed(service, runner, HttpPort(m, name)), $"runner → {name} http");
            }
        }
        var broker = NetworkPolicyTests.Service(m, "secrets-broker");
        foreach (var (caller, reaches) in new[] { ("provisioner", true), ("cache", true), ("intake", true) })
        {
            var pod = NetworkPolicyTests.Service(m, caller, "10.244.2.10");
            var port = AdminPort(m, "secrets-broker");
            Assert.Equal(reaches, net.EgressAllowed(pod, broker, port) && net.IngressAllowed(broker, pod, port));
        }
        // The cache's admin listener: the intake reads what each job was served there (the attestation); nobody else.
        var cache = NetworkPolicyTests.Service(m, "cache");
        foreach (var (caller, reaches) in new[] { ("intake", true), ("provisioner", false), ("secrets-broker", false) })
        {
            var pod = NetworkPolicyTests.Service(m, caller, "10.244.2.11");
            var port = AdminPort(m, "cache");
            Assert.Equal(reaches, net.EgressAllowed(pod, cache, port) && net.IngressAllowed(cache, pod, port));
        }
    }

    [Theory]
    [InlineData("base")]
    [InlineData(Helm.Default)]
    public void The_network_check_catches_each_way_of_opening_an_admin_listener(string target)
    {
        // Broken on purpose, one policy at a time: each adds the path it opens.
        Assert.Contains("runner(control-plane) → secrets-broker:admin (egress)", Broken(target, m =>
            Policy(m, RenderedManifests.Runners, "allow-control-plane").Spec.Egress[0].Ports.Add(new V1NetworkPolicyPort { Protocol = "TCP", Port = 8081 })));
        Assert.Contains("secrets-broker:admin ← runner(egress) (ingress)", Broken(target, m =>
            Policy(m, RenderedManifests.ControlPlane, "allow-secrets-broker-admin-ingress").Spec.Ingress[0].FromProperty.Add(new V1NetworkPolicyPeer
            {
                NamespaceSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["kubernetes.io/metadata.name"] = RenderedManifests.Runners } },
            })));
        Assert.Contains("cache:admin ← runner(control-plane) (ingress)", Broken(target, m =>
            Policy(m, RenderedManifests.ControlPlane, "allow-cache-ingress").Spec.Ingress[0].Ports.Add(new V1NetworkPolicyPort { Protocol = "TCP", Port = 8081 })));

        static List<string> Broken(string target, Action<RenderedManifests> breakIt)
        {
            var m = Manifests.RenderFresh(target);
            breakIt(m);
            return AdminPaths(m);
        }
    }

    [Theory]
    [InlineData("base")]
    [InlineData(Helm.Default)]
    public void The_wiring_check_catches_each_missing_piece(string target)
    {
        Assert.Contains("secrets-broker: AdminListener__Port", Broken(target, m => RemoveWhere(Env(m, "secrets-broker"), e => e.Name == "AdminListener__Port")));
        Assert.Contains("cache: ASPNETCORE_HTTP_PORTS", Broken(target, m => Env(m, "cache").Single(e => e.Name == "ASPNETCORE_HTTP_PORTS").Value = "8080"));
        Assert.Contains("secrets-broker: Kestrel__Endpoints", Broken(target, m => Env(m, "secrets-broker").Add(new V1EnvVar { Name = "Kestrel__Endpoints__http__Url", Value = "http://+:8080" })));
        Assert.Contains("provisioner: JobTokens__Authority", Broken(target, m => Env(m, "provisioner").Single(e => e.Name == "JobTokens__Authority").Value = "http://secrets-broker"));
        Assert.Contains("cache: Checkout__SecretsBrokerUrl", Broken(target, m => Env(m, "cache").Single(e => e.Name == "Checkout__SecretsBrokerUrl").Value = "http://secrets-broker"));
        Assert.Contains("intake: Attestations__SignerUrl", Broken(target, m => Env(m, "intake").Single(e => e.Name == "Attestations__SignerUrl").Value = "http://secrets-broker"));
        Assert.Contains("provisioner: Provisioner__Kubernetes__SecretsBrokerUrl", Broken(target, m =>
            Env(m, "provisioner").Single(e => e.Name == "Provisioner__Kubernetes__SecretsBrokerUrl").Value = "http://secrets-broker.ephemeralci.svc:8081"));
        Assert.Contains("Service cache", Broken(target, m =>
            RemoveWhere(m.OfType<V1Service>().Single(s => s.Metadata.Name == "cache").Spec.Ports, p => p.Name == "admin")));

        static string Broken(string target, Action<RenderedManifests> breakIt)
        {
            var m = Manifests.RenderFresh(target);
            breakIt(m);
            return string.Join('\n', WiringProblems(m));
        }
    }

    /// <summary>
    /// Who may open a connection to an admin listener, one end at a time (a policy on either end that
    /// opens it is a finding, even when the other end still refuses). Egress is ours to decide only for
    /// our own pods; ingress for every caller, another workload of the cluster included.
    /// </summary>
    private static List<string> AdminPaths(RenderedManifests m)
    {
        var net = new NetworkPolicyEvaluator(m);
        (string Name, PodAddress Pod, bool Ours)[] callers =
        [
            ("runner(control-plane)", NetworkPolicyTests.Runner(internet: false), true),
            ("runner(egress)", NetworkPolicyTests.Runner(internet: true), true),
            .. RenderedManifests.Services.Select(s => (s, NetworkPolicyTests.Service(m, s, "10.244.2.10"), true)),
            .. m.Deployments.Where(d => d.Metadata.Name == "github-actions").Select(d => (d.Metadata.Name, NetworkPolicyTests.Service(m, d.Metadata.Name, "10.244.2.12"), true)),
            ("another workload", NetworkPolicyTests.SomeOtherWorkload, false),
        ];
        var paths = new List<string>();
        foreach (var name in AdminServices)
        {
            var service = NetworkPolicyTests.Service(m, name);
            var port = AdminPort(m, name);
            foreach (var (caller, pod, ours) in callers.Where(c => c.Name != name))
            {
                if (ours && net.EgressAllowed(pod, service, port)) paths.Add($"{caller} → {name}:admin (egress)");
                if (net.IngressAllowed(service, pod, port)) paths.Add($"{name}:admin ← {caller} (ingress)");
            }
        }
        return [.. paths.Order(StringComparer.Ordinal)];
    }

    /// <summary>
    /// What makes the admin listener real: a container port of its own that Kestrel listens on and
    /// AdminListener:Port names, a Service port for it, the callers of operator routes pointed at it
    /// and the URLs handed to runners pointed at the http port.
    /// </summary>
    private static List<string> WiringProblems(RenderedManifests m)
    {
        var problems = new List<string>();
        foreach (var name in AdminServices)
        {
            var container = m.Deployment(name).Spec.Template.Spec.Containers[0];
            var env = (container.Env ?? []).ToDictionary(e => e.Name, e => e.Value);
            var http = container.Ports?.SingleOrDefault(p => p.Name == "http")?.ContainerPort;
            var admin = container.Ports?.SingleOrDefault(p => p.Name == "admin")?.ContainerPort;
            if (admin is null || admin == http)
            {
                problems.Add($"{name}: no container port 'admin' besides http");
                continue;
            }
            if (env.GetValueOrDefault("AdminListener__Port") != $"{admin}")
            {
                problems.Add($"{name}: AdminListener__Port={env.GetValueOrDefault("AdminListener__Port")}, not its admin port {admin}");
            }
            var listens = env.GetValueOrDefault("ASPNETCORE_HTTP_PORTS")?.Split(';') ?? [];
            if (!listens.Contains($"{http}") || !listens.Contains($"{admin}"))
            {
                problems.Add($"{name}: ASPNETCORE_HTTP_PORTS={env.GetValueOrDefault("ASPNETCORE_HTTP_PORTS")} does not listen on {http} and {admin}");
            }
            // Kestrel endpoints from configuration replace the HTTP_PORTS listeners (with a warning).
            if (env.Keys.Any(k => k.StartsWith("Kestrel__Endpoints__", StringComparison.Ordinal)))
            {
                problems.Add($"{name}: Kestrel__Endpoints__* would replace the ASPNETCORE_HTTP_PORTS listeners");
            }
            var service = m.OfType<V1Service>().Single(s => s.Metadata.Name == name && s.Metadata.NamespaceProperty == RenderedManifests.ControlPlane);
            if (!service.Spec.Ports.Any(p => p.TargetPort.Value is "admin" || p.TargetPort.Value == $"{admin}"))
            {
                problems.Add($"Service {name}: no port for the admin listener");
            }
        }
        foreach (var (deployment, setting, admin) in new[]
        {
            ("provisioner", "JobTokens__Authority", true),                          // mints job tokens
            ("cache", "Checkout__SecretsBrokerUrl", true),                           // reads operator-only forge credentials
            ("intake", "JobTokens__Authority", false),                              // JWKS only
            ("intake", "Attestations__SignerUrl", true),                             // has job attestations signed
            ("intake", "Intake__Admin__SecretsBrokerUrl", true),                     // web UI Secrets page (admin's pasted token)
            ("intake", "Intake__Admin__CacheUrl", true),                             // web UI Cache page (admin's pasted token)
            ("cache", "JobTokens__Authority", false),
            ("provisioner", "Provisioner__Kubernetes__SecretsBrokerUrl", false),    // handed to runners
            ("provisioner", "Provisioner__Kubernetes__CacheUrl", false),
        })
        {
            var value = Env(m, deployment).SingleOrDefault(e => e.Name == setting)?.Value;
            var port = value is null ? null : ServicePortOf(m, value);
            if (port is null || (port.TargetPort.Value == "admin") != admin)
            {
                problems.Add($"{deployment}: {setting}={value} reaches {(port is null ? "no Service port" : $"the '{port.TargetPort.Value}' port")}, not the {(admin ? "admin listener" : "http port")}");
            }
        }
        return problems;
    }

    private static V1ServicePort? ServicePortOf(RenderedManifests m, string url)
    {
        var uri = new Uri(url);
        var labels = uri.Host.Split('.');
        var ns = labels.Length >= 2 ? labels[1] : RenderedManifests.ControlPlane;
        return m.OfType<V1Service>().SingleOrDefault(s => s.Metadata.Name == labels[0] && s.Metadata.NamespaceProperty == ns)?
            .Spec.Ports.SingleOrDefault(p => p.Port == uri.Port);
    }

    private static IList<V1EnvVar> Env(RenderedManifests m, string deployment) =>
        m.Deployment(deployment).Spec.Template.Spec.Containers[0].Env;

    private static void RemoveWhere<T>(IList<T> list, Func<T, bool> predicate)
    {
        foreach (var item in list.Where(predicate).ToList()) list.Remove(item);
    }

    private static V1NetworkPolicy Policy(RenderedManifests m, string ns, string name) =>
        m.NetworkPolicies(ns).Single(p => p.Metadata.Name == name);

    private static int AdminPort(RenderedManifests m, string name) => ContainerPort(m, name, "admin");

    private static int HttpPort(RenderedManifests m, string name) => ContainerPort(m, name, "http");

    private static int ContainerPort(RenderedManifests m, string name, string port) =>
        m.Deployment(name).Spec.Template.Spec.Containers[0].Ports.Single(p => p.Name == port).ContainerPort;
}
