using k8s;
using k8s.Models;

namespace EphemeralCI.DeployTests.Rendering;

/// <summary>The objects one kustomization renders, typed.</summary>
public sealed class RenderedManifests(IReadOnlyList<IKubernetesObject<V1ObjectMeta>> objects)
{
    public const string ControlPlane = "ephemeralci";
    public const string Runners = "ephemeralci-runners";
    public static readonly string[] Services = ["intake", "secrets-broker", "cache", "provisioner"];

    public IReadOnlyList<IKubernetesObject<V1ObjectMeta>> All { get; } = objects;

    public IEnumerable<T> OfType<T>() => All.OfType<T>();

    public IReadOnlyList<V1Deployment> Deployments => [.. OfType<V1Deployment>()];

    public V1Deployment Deployment(string name) => Deployments.Single(d => d.Metadata.Name == name);

    public V1Namespace Namespace(string name) => OfType<V1Namespace>().Single(n => n.Metadata.Name == name);

    /// <summary>A ConfigMap by its name, or by the name Kustomize's generator gave it (name-&lt;hash of the contents&gt;).</summary>
    public V1ConfigMap ConfigMap(string ns, string name) =>
        OfType<V1ConfigMap>().Single(c => c.Metadata.NamespaceProperty == ns
            && (c.Metadata.Name == name || System.Text.RegularExpressions.Regex.IsMatch(c.Metadata.Name, $"^{name}-[a-z0-9]{{10}}$")));

    public IEnumerable<V1NetworkPolicy> NetworkPolicies(string ns) =>
        OfType<V1NetworkPolicy>().Where(p => p.Metadata.NamespaceProperty == ns);

    /// <summary>Every pod template: the workloads' security is checked on these.</summary>
    public IEnumerable<(string Workload, V1PodTemplateSpec Template)> PodTemplates() =>
        All.Select(o => o switch
        {
            V1Deployment d => (Name(d), d.Spec.Template),
            V1StatefulSet s => (Name(s), s.Spec.Template),
            V1DaemonSet s => (Name(s), s.Spec.Template),
            V1Job j => (Name(j), j.Spec.Template),
            V1CronJob c => (Name(c), c.Spec.JobTemplate.Spec.Template),
            V1ReplicaSet r => (Name(r), r.Spec.Template),
            _ => ((string, V1PodTemplateSpec)?)null,
        }).Where(t => t is not null).Select(t => t!.Value);

    public static string Name(IKubernetesObject<V1ObjectMeta> o) => $"{o.Kind} {o.Metadata.NamespaceProperty}/{o.Metadata.Name}";

    /// <summary>A namespace's labels as the API server sets them (kubernetes.io/metadata.name included).</summary>
    public IDictionary<string, string> NamespaceLabels(string ns)
    {
        var labels = new Dictionary<string, string>(
            OfType<V1Namespace>().SingleOrDefault(n => n.Metadata.Name == ns)?.Metadata.Labels ?? new Dictionary<string, string>());
        labels["kubernetes.io/metadata.name"] = ns;
        return labels;
    }
}
