using System.Net;
using EphemeralCI.DeployTests.Images;
using EphemeralCI.DeployTests.Rendering;
using EphemeralCI.RunnerTemplates;
using k8s;
using k8s.Models;
using YamlDotNet.Serialization;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>
/// deploy/helm/ephemeralci: rendered by the real <c>helm template</c>. The security invariants run on
/// it like on every kustomization (their theories include <see cref="Manifests.Targets"/>); here: the
/// chart and Kustomize ship the same objects, the schema refuses what would weaken them, and the
/// values reach the pods.
/// </summary>
public sealed partial class HelmChartTests
{
    // Kustomize's generated runner-templates-<hash> is the chart's runner-templates; every other object keeps its name.
    private static HashSet<string> Objects(RenderedManifests m) =>
        [.. m.All.Select(o => $"{o.Kind} {o.Metadata.NamespaceProperty}/{(o is V1ConfigMap ? GeneratedSuffix().Replace(o.Metadata.Name, "") : o.Metadata.Name)}")];

    [System.Text.RegularExpressions.GeneratedRegex("(?<=^runner-templates)-[a-z0-9]{10}$")]
    private static partial System.Text.RegularExpressions.Regex GeneratedSuffix();

    [Theory]
    [InlineData("base", Helm.Default)]
    [InlineData("overlays/production", Helm.Production)]
    [InlineData(Kustomize.WithGitHubActions, Helm.WithGitHubActions)]
    public void The_chart_ships_the_objects_kustomize_ships(string kustomization, string chart)
    {
        var expected = Objects(Manifests.Render(kustomization));
        // The component leaves the adapter's settings (ConfigMap github-actions) to the operator; the chart renders them from githubActions.*.
        if (Manifests.WithGitHubActions.Contains(kustomization)) Assert.True(expected.Add($"ConfigMap {RenderedManifests.ControlPlane}/github-actions"));
        Assert.Equal(expected.Order(), Objects(Manifests.Render(chart)).Order());
    }

    [Theory]
    [InlineData("base", Helm.Default)]
    [InlineData("overlays/production", Helm.Production)]
    [InlineData(Kustomize.WithGitHubActions, Helm.WithGitHubActions)]
    public void The_chart_grants_and_allows_what_kustomize_does(string kustomization, string chart)
    {
        var k = Manifests.Render(kustomization);
        var h = Manifests.Render(chart);
        // Roles, NetworkPolicies and the runner templates compare as data (labels aside).
        Assert.Equal(Rules(k), Rules(h));
        foreach (var policy in k.OfType<V1NetworkPolicy>())
        {
            var twin = h.OfType<V1NetworkPolicy>().Single(p => p.Metadata.Name == policy.Metadata.Name && p.Metadata.NamespaceProperty == policy.Metadata.NamespaceProperty);
            Assert.Equal(KubernetesJson.Serialize(policy.Spec), KubernetesJson.Serialize(twin.Spec));
        }
        var kt = k.ConfigMap(RenderedManifests.ControlPlane, "runner-templates").Data;
        var ht = h.ConfigMap(RenderedManifests.ControlPlane, "runner-templates").Data;
        Assert.Equal(kt.Keys.Order(), ht.Keys.Order());
        foreach (var file in kt.Keys)
        {
            // Read by the real loader; equal definitions hash equal (Helm writes the keys sorted).
            Assert.Equal(
                RunnerTemplateLoader.HashOf(RunnerTemplateLoader.Parse(file, kt[file], "kustomize").Definition),
                RunnerTemplateLoader.HashOf(RunnerTemplateLoader.Parse(file, ht[file], "helm").Definition));
        }
        // Same environment for every service (the chart adds Provisioner__Kubernetes__Instance, the default made explicit).
        foreach (var d in k.Deployments)
        {
            var env = h.Deployment(d.Metadata.Name).Spec.Template.Spec.Containers[0].Env.Where(e => e.Name != "Provisioner__Kubernetes__Instance");
            Assert.Equal(d.Spec.Template.Spec.Containers[0].Env.Select(e => $"{e.Name}={e.Value}").Order(), env.Select(e => $"{e.Name}={e.Value}").Order());
            // And the same Secrets and ConfigMaps read as environment (the adapter: its ConfigMap, then its Secret).
            Assert.Equal(EnvFrom(d), EnvFrom(h.Deployment(d.Metadata.Name)));
        }
    }

    private static List<string> EnvFrom(V1Deployment d) =>
        [.. d.Spec.Template.Spec.Containers[0].EnvFrom.Select(e => e.SecretRef is { } s ? $"secret {s.Name} optional={s.Optional}" : $"configMap {e.ConfigMapRef.Name} optional={e.ConfigMapRef.Optional}")];

    private static List<string> Rules(RenderedManifests m) =>
        [.. m.OfType<V1Role>().SelectMany(r => r.Rules.Select(rule => $"{r.Metadata.NamespaceProperty}/{r.Metadata.Name}: {string.Join(',', rule.ApiGroups)} {string.Join(',', rule.Resources)} {string.Join(',', rule.Verbs)}")).Order()];

    [Theory]
    [InlineData("image.tag=latest", "/image/tag")]
    [InlineData("image.tag=LATEST", "/image/tag")]
    [InlineData("image.digests.intake=sha256:abc", "/image/digests/intake")]
    [InlineData("namespaces.podSecurityVersion=latest", "/namespaces/podSecurityVersion")]
    [InlineData("networkPolicy.clusterCIDRs[0]=everything", "/networkPolicy/clusterCIDRs/0")]
    [InlineData("intake.replica=3", "/intake")]
    [InlineData("provisioner.replicas=0", "/provisioner")]
    [InlineData("runnerTemplates.shell.backend=local", "/runnerTemplates/shell/backend")]
    [InlineData("runnerTemplates.shell.image=registry.example.com/runner:latest", "/runnerTemplates/shell/image")]
    [InlineData("runnerTemplates.shell.runAsUser=0", "/runnerTemplates/shell/runAsUser")]
    [InlineData("controlPlane.extraEnv[0].name=ConnectionStrings__intakedb", "/controlPlane/extraEnv/0/name")]
    [InlineData("githubActions.enabled=true", "/githubActions/appId")]
    public void The_schema_refuses_values_that_would_weaken_or_break_the_install(string value, string field)
    {
        var (exit, _, stderr) = Helm.Template("--set", value);
        Assert.True(exit != 0, $"helm accepted {value}");
        Assert.Contains(field, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Values_reach_the_pods_images_by_digest_placement_and_pull_secrets()
    {
        const string digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        var m = Kustomize.Load(Helm.RenderText(
            "--set", $"image.digests.intake={digest}",
            "--set", "image.registry=ghcr.io/acme/eci", "--set", "image.tag=1.2.3",
            "--set", "controlPlane.nodeSelector.pool=system",
            "--set", "controlPlane.tolerations[0].key=dedicated,controlPlane.tolerations[0].operator=Exists,controlPlane.tolerations[0].effect=NoSchedule",
            "--set", "controlPlane.priorityClassName=ephemeralci-control-plane",
            "--set", "imagePullSecrets[0].name=ghcr"));
        Assert.Equal($"ghcr.io/acme/eci/intake@{digest}", m.Deployment("intake").Spec.Template.Spec.Containers[0].Image);
        foreach (var d in m.Deployments)
        {
            var pod = d.Spec.Template.Spec;
            if (d.Metadata.Name != "intake") Assert.Equal($"ghcr.io/acme/eci/{d.Metadata.Name}:1.2.3", pod.Containers[0].Image);
            Assert.Equal("system", pod.NodeSelector["pool"]);
            Assert.Equal("dedicated", Assert.Single(pod.Tolerations).Key);
            Assert.Equal("ephemeralci-control-plane", pod.PriorityClassName);
            Assert.Equal("ghcr", Assert.Single(pod.ImagePullSecrets).Name);
        }
        // By default: nothing to pull with, and the images eng/images.sh names.
        foreach (var d in Manifests.Render(Helm.Default).Deployments)
        {
            Assert.Null(d.Spec.Template.Spec.ImagePullSecrets);
            Assert.Contains(d.Metadata.Name, ImageRecipe.Services);
            Assert.EndsWith($"/{d.Metadata.Name}:{ImageRecipe.Version}", d.Spec.Template.Spec.Containers[0].Image, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Runners_never_reach_the_cluster_ranges_the_production_values_name()
    {
        var values = new DeserializerBuilder().Build().Deserialize<Dictionary<string, object>>(
            File.ReadAllText(Path.Combine(Repository.Root, "deploy", "helm", "examples", "production.yaml")));
        var ranges = ((List<object>)((Dictionary<object, object>)values["networkPolicy"])["clusterCIDRs"]).Select(r => IPNetwork.Parse((string)r)).ToList();
        Assert.True(ranges.Count >= 2);
        var net = new NetworkPolicyEvaluator(Manifests.Render(Helm.Production));
        var runner = new PodAddress(RenderedManifests.Runners, new Dictionary<string, string> { [EphemeralCI.Provisioner.Backends.Kubernetes.RunnerLabels.Network] = "egress" }, IPAddress.Parse("10.244.1.7"));
        foreach (var range in ranges)
        {
            Assert.False(net.EgressAllowed(runner, range.BaseAddress, 443), $"runner → {range}");
        }
        // An IPv6 cluster range lands in the IPv6 block's exceptions.
        var v6 = new NetworkPolicyEvaluator(Kustomize.Load(Helm.RenderText("--set", "networkPolicy.clusterCIDRs[0]=2001:db8:42::/56")));
        Assert.False(v6.EgressAllowed(runner, IPAddress.Parse("2001:db8:42::10"), 443));
        Assert.True(v6.EgressAllowed(runner, IPAddress.Parse("2001:db8:43::10"), 443));
    }

    [Fact]
    public void Without_namespaces_the_chart_renders_none_and_uses_the_names_given()
    {
        var m = Kustomize.Load(Helm.RenderText("--set", "namespaces.create=false", "--set", "namespaces.runners=ci-runners"));
        Assert.Empty(m.OfType<V1Namespace>());
        Assert.All(m.OfType<V1Role>(), r => Assert.Equal("ci-runners", r.Metadata.NamespaceProperty));
        var env = m.Deployment("provisioner").Spec.Template.Spec.Containers[0].Env.ToDictionary(e => e.Name, e => e.Value);
        Assert.Equal("ci-runners", env["Provisioner__Kubernetes__Namespace"]);
    }
}
