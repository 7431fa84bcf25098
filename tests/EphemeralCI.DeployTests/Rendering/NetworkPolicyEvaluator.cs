using System.Net;
using k8s.Models;

namespace EphemeralCI.DeployTests.Rendering;

/// <summary>A pod by what NetworkPolicies select on: its namespace, labels and IP.</summary>
public sealed record PodAddress(string Namespace, IDictionary<string, string> Labels, IPAddress Ip);

/// <summary>
/// Decides, as the NetworkPolicy API specifies, whether a connection is allowed: a pod selected by
/// no policy of a direction is open in that direction; once selected, a connection is allowed only
/// if some rule of some selecting policy matches its peer and port. Peers: a podSelector alone means
/// pods of the policy's namespace; a namespaceSelector alone every pod of matching namespaces; both
/// together pods matching both; an ipBlock an address inside its CIDR and in none of its exceptions.
/// </summary>
public sealed class NetworkPolicyEvaluator(RenderedManifests manifests)
{
    private readonly IReadOnlyList<V1NetworkPolicy> _policies = [.. manifests.OfType<V1NetworkPolicy>()];

    /// <summary>Egress from <paramref name="source"/> to a pod (matched by labels and by IP).</summary>
    public bool EgressAllowed(PodAddress source, PodAddress destination, int port, string protocol = "TCP") =>
        Allowed(source, "Egress", p => p.Egress?.Select(r => new Rule(r.To, r.Ports)), destination, port, protocol);

    /// <summary>Egress from <paramref name="source"/> to an address outside the cluster.</summary>
    public bool EgressAllowed(PodAddress source, IPAddress destination, int port, string protocol = "TCP") =>
        Allowed(source, "Egress", p => p.Egress?.Select(r => new Rule(r.To, r.Ports)), new PodAddress("", new Dictionary<string, string>(), destination), port, protocol, external: true);

    /// <summary>Ingress into <paramref name="destination"/> from a pod.</summary>
    public bool IngressAllowed(PodAddress destination, PodAddress source, int port, string protocol = "TCP") =>
        Allowed(destination, "Ingress", p => p.Ingress?.Select(r => new Rule(r.FromProperty, r.Ports)), source, port, protocol);

    private bool Allowed(
        PodAddress subject, string direction, Func<V1NetworkPolicySpec, IEnumerable<Rule>?> rulesOf,
        PodAddress peer, int port, string protocol, bool external = false)
    {
        var selecting = _policies
            .Where(p => p.Metadata.NamespaceProperty == subject.Namespace)
            .Where(p => Types(p.Spec).Contains(direction))
            .Where(p => Matches(p.Spec.PodSelector, subject.Labels))
            .ToList();
        if (selecting.Count == 0) return true;
        return selecting.Any(p => (rulesOf(p.Spec) ?? []).Any(rule =>
            PortMatches(rule.Ports, port, protocol) &&
            (rule.Peers is null || rule.Peers.Count == 0 || rule.Peers.Any(x => PeerMatches(x, p.Metadata.NamespaceProperty, peer, external)))));
    }

    /// <summary>policyTypes as the API server defaults them when absent.</summary>
    private static IList<string> Types(V1NetworkPolicySpec spec) =>
        spec.PolicyTypes is { Count: > 0 } types ? types : spec.Egress is { Count: > 0 } ? ["Ingress", "Egress"] : ["Ingress"];

    private static bool PortMatches(IList<V1NetworkPolicyPort>? ports, int port, string protocol) =>
        ports is null || ports.Count == 0 || ports.Any(p =>
            (p.Protocol ?? "TCP") == protocol &&
            (p.Port is null || (int.TryParse(p.Port.Value, out var n) && (p.EndPort is { } end ? port >= n && port <= end : port == n))));

    private bool PeerMatches(V1NetworkPolicyPeer peer, string policyNamespace, PodAddress other, bool external)
    {
        if (peer.IpBlock is { } block)
        {
            var cidr = IPNetwork.Parse(block.Cidr);
            return cidr.BaseAddress.AddressFamily == other.Ip.AddressFamily && cidr.Contains(other.Ip)
                && !(block.Except ?? []).Select(IPNetwork.Parse).Any(e => e.BaseAddress.AddressFamily == other.Ip.AddressFamily && e.Contains(other.Ip));
        }
        if (external) return false; // selectors only ever match pods
        var namespaceMatches = peer.NamespaceSelector is null
            ? other.Namespace == policyNamespace
            : Matches(peer.NamespaceSelector, manifests.NamespaceLabels(other.Namespace));
        return namespaceMatches && (peer.PodSelector is null || Matches(peer.PodSelector, other.Labels));
    }

    private sealed record Rule(IList<V1NetworkPolicyPeer>? Peers, IList<V1NetworkPolicyPort>? Ports);

    public static bool Matches(V1LabelSelector? selector, IDictionary<string, string> labels)
    {
        if (selector is null) return true;
        foreach (var (key, value) in selector.MatchLabels ?? new Dictionary<string, string>())
        {
            if (!labels.TryGetValue(key, out var actual) || actual != value) return false;
        }
        foreach (var e in selector.MatchExpressions ?? [])
        {
            var has = labels.TryGetValue(e.Key, out var actual);
            var ok = e.OperatorProperty switch
            {
                "In" => has && e.Values.Contains(actual!),
                "NotIn" => !has || !e.Values.Contains(actual!),
                "Exists" => has,
                "DoesNotExist" => !has,
                _ => throw new InvalidOperationException($"unknown selector operator '{e.OperatorProperty}'"),
            };
            if (!ok) return false;
        }
        return true;
    }
}
