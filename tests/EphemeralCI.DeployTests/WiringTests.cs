using EphemeralCI.DeployTests.Rendering;
using k8s.Models;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>The configuration the services get points at things the manifests really create.</summary>
public sealed class WiringTests
{
    public static TheoryData<string> Targets => [.. Manifests.Targets];

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_service_url_in_the_configuration_reaches_a_serving_container(string target)
    {
        var manifests = Manifests.Render(target);
        var urls = 0;
        foreach (var deployment in manifests.Deployments)
        {
            foreach (var env in deployment.Spec.Template.Spec.Containers.SelectMany(c => c.Env ?? []))
            {
                if (!Uri.TryCreate(env.Value, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")) continue;
                urls++;
                // "name" resolves in the pod's own namespace, "name.namespace.svc[.cluster.local]" anywhere.
                var labels = uri.Host.Split('.');
                var (service, ns) = labels.Length == 1 ? (labels[0], deployment.Metadata.NamespaceProperty)
                    : labels.Length >= 3 && labels[2] == "svc" ? (labels[0], labels[1])
                    : throw new Xunit.Sdk.XunitException($"{deployment.Metadata.Name}: {env.Name}={env.Value} is not a cluster service name");
                var where = $"{deployment.Metadata.Name}: {env.Name}={env.Value}";

                var svc = manifests.OfType<V1Service>().SingleOrDefault(s => s.Metadata.Name == service && s.Metadata.NamespaceProperty == ns);
                Assert.True(svc is not null, $"{where}: no Service {ns}/{service}");
                var port = svc.Spec.Ports.SingleOrDefault(p => p.Port == uri.Port);
                Assert.True(port is not null, $"{where}: Service {service} has no port {uri.Port}");

                var backend = manifests.Deployments.SingleOrDefault(d => d.Metadata.NamespaceProperty == ns
                    && NetworkPolicyEvaluator.Matches(new V1LabelSelector { MatchLabels = svc.Spec.Selector }, d.Spec.Template.Metadata.Labels));
                Assert.True(backend is not null, $"{where}: Service {service} selects no Deployment");
                var containerPorts = backend.Spec.Template.Spec.Containers.SelectMany(c => c.Ports ?? []).ToList();
                Assert.Contains(containerPorts, p => p.Name == port.TargetPort.Value || p.ContainerPort.ToString(System.Globalization.CultureInfo.InvariantCulture) == port.TargetPort.Value);
            }
        }
        Assert.True(urls >= 4, "the services' URLs were not found (JobTokens__Authority ×3, the runners' intake URL)");
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void No_secret_is_in_the_manifests(string target)
    {
        // Secrets are created out of band (docs/deploy.md); the manifests only name them.
        Assert.Empty(Manifests.Render(target).OfType<V1Secret>());
    }
}
