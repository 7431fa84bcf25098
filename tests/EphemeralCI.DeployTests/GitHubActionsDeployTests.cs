using EphemeralCI.DeployTests.Rendering;
using k8s.Models;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>
/// The GitHub Actions adapter (issue 19) is an optional component: off in every shipped rendering, on in the example overlay
/// <c>overlays/github-actions</c>, which every other test of this project also renders (security, pinning, policies). Here:
/// what is particular to it — its credentials come only from a Secret (the App's key and webhook secret from the broker,
/// never from the manifests), it reaches the broker's admin listener, and no runner reaches it.
/// </summary>
public sealed class GitHubActionsDeployTests
{
    private const string Adapter = "github-actions";

    public static TheoryData<string> Shipped => [.. Manifests.Targets.Where(t => t != Kustomize.WithGitHubActions)];

    [Theory]
    [MemberData(nameof(Shipped))]
    public void The_adapter_is_off_unless_an_overlay_turns_it_on(string target)
    {
        var m = Manifests.Render(target);
        Assert.DoesNotContain(m.Deployments, d => d.Metadata.Name == Adapter);
        Assert.DoesNotContain(m.OfType<V1Service>(), s => s.Metadata.Name == Adapter);
    }

    [Fact]
    public void Its_credentials_come_from_a_Secret_and_the_Apps_key_and_webhook_secret_from_the_broker_never_the_manifests()
    {
        var m = Manifests.Render(Kustomize.WithGitHubActions);
        var pod = m.Deployment(Adapter).Spec.Template.Spec;
        var container = Assert.Single(pod.Containers);
        Assert.Equal(["github-actions"], container.EnvFrom.Where(e => e.SecretRef is not null).Select(e => e.SecretRef.Name));
        Assert.Equal(["github-actions"], container.EnvFrom.Where(e => e.ConfigMapRef is not null).Select(e => e.ConfigMapRef.Name));
        var env = container.Env.ToDictionary(e => e.Name, e => e.Value);
        // Literal env is addresses and ports only; the key, the webhook secret and every token are nowhere in the manifests.
        Assert.Equal(["ASPNETCORE_HTTP_PORTS", "GitHubActions__IntakeUrl", "GitHubActions__SecretsBrokerUrl", "HOME"], env.Keys.Order());
        Assert.Equal("http://secrets-broker:8081", env["GitHubActions__SecretsBrokerUrl"]);
        Assert.DoesNotContain(m.All, o => o is V1Secret);
        Assert.DoesNotContain(m.OfType<V1ConfigMap>(), c => c.Metadata.Name.StartsWith(Adapter, StringComparison.Ordinal));
        // It never talks to the Kubernetes API: no token, a ServiceAccount of its own.
        Assert.Equal(Adapter, pod.ServiceAccountName);
        Assert.False(pod.AutomountServiceAccountToken);
        Assert.False(Assert.Single(m.OfType<V1ServiceAccount>(), a => a.Metadata.Name == Adapter).AutomountServiceAccountToken);
    }

    [Fact]
    public void It_reaches_the_intake_and_the_brokers_admin_listener_and_no_runner_reaches_it()
    {
        var m = Manifests.Render(Kustomize.WithGitHubActions);
        var net = new NetworkPolicyEvaluator(m);
        var adapter = NetworkPolicyTests.Service(m, Adapter, "10.244.2.30");
        var broker = NetworkPolicyTests.Service(m, "secrets-broker");
        var intake = NetworkPolicyTests.Service(m, "intake");
        Assert.True(net.EgressAllowed(adapter, broker, 8081) && net.IngressAllowed(broker, adapter, 8081), "adapter → broker admin");
        Assert.True(net.EgressAllowed(adapter, intake, 8080) && net.IngressAllowed(intake, adapter, 8080), "adapter → intake");
        // The webhook port answers the cluster's ingress controller, never a runner (a job forging deliveries or probing).
        foreach (var internet in new[] { false, true })
        {
            var runner = NetworkPolicyTests.Runner(internet);
            Assert.False(net.EgressAllowed(runner, adapter, 8080) && net.IngressAllowed(adapter, runner, 8080), $"runner (internet: {internet}) → adapter");
        }
        Assert.True(net.IngressAllowed(adapter, NetworkPolicyTests.SomeOtherWorkload, 8080), "an ingress controller in another namespace → adapter");
    }
}
