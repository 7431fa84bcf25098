using System.Text.RegularExpressions;
using EphemeralCI.DeployTests.Rendering;
using k8s.Models;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>
/// The provisioner may create, watch and delete only the runner objects it needs, only in the
/// runners namespace; nothing else in the cluster. The grants are compared with the API calls the
/// Kubernetes backend's source makes, so the two cannot drift apart.
/// </summary>
public sealed partial class RbacTests
{
    public static TheoryData<string> Targets => [.. Manifests.Targets];

    private const string ProvisionerAccount = "provisioner";

    [Theory]
    [MemberData(nameof(Targets))]
    public void There_is_no_cluster_wide_rbac(string target)
    {
        var manifests = Manifests.Render(target);
        Assert.Empty(manifests.OfType<V1ClusterRole>());
        Assert.Empty(manifests.OfType<V1ClusterRoleBinding>());
        // A RoleBinding may also grant a ClusterRole's rules inside its namespace: none does.
        Assert.All(manifests.OfType<V1RoleBinding>(), b => Assert.Equal("Role", b.RoleRef.Kind));
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Rbac_exists_only_in_the_runners_namespace_and_binds_only_the_provisioner(string target)
    {
        var manifests = Manifests.Render(target);
        var roles = manifests.OfType<V1Role>().ToList();
        var bindings = manifests.OfType<V1RoleBinding>().ToList();
        Assert.NotEmpty(roles);
        Assert.All(roles, r => Assert.Equal(RenderedManifests.Runners, r.Metadata.NamespaceProperty));
        Assert.All(bindings, b => Assert.Equal(RenderedManifests.Runners, b.Metadata.NamespaceProperty));
        var subject = Assert.Single(bindings.SelectMany(b => b.Subjects));
        Assert.Equal(("ServiceAccount", ProvisionerAccount, RenderedManifests.ControlPlane), (subject.Kind, subject.Name, subject.NamespaceProperty));
        Assert.All(bindings, b => Assert.Contains(roles, r => r.Metadata.Name == b.RoleRef.Name));
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void No_rule_uses_a_wildcard_or_a_name_list_that_widens_it(string target)
    {
        foreach (var role in Manifests.Render(target).OfType<V1Role>())
        {
            foreach (var rule in role.Rules)
            {
                Assert.DoesNotContain("*", rule.Verbs);
                Assert.DoesNotContain("*", rule.ApiGroups ?? []);
                Assert.DoesNotContain(rule.Resources ?? [], r => r.Contains('*', StringComparison.Ordinal));
                Assert.True(rule.NonResourceURLs is null or { Count: 0 }, $"{role.Metadata.Name}: nonResourceURLs");
                // Escalation paths through RBAC itself are never needed by the provisioner.
                Assert.DoesNotContain(rule.Verbs, v => v is "escalate" or "bind" or "impersonate");
                Assert.DoesNotContain(rule.Resources ?? [], r => r is "roles" or "rolebindings" or "pods/exec" or "pods/attach" or "serviceaccounts/token");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void The_provisioner_is_granted_exactly_what_the_kubernetes_backend_calls(string target)
    {
        var granted = Manifests.Render(target).OfType<V1Role>()
            .SelectMany(r => r.Rules)
            .SelectMany(rule => rule.ApiGroups.SelectMany(g => rule.Resources.SelectMany(res => rule.Verbs.Select(v => $"{g}/{res}:{v}"))))
            .ToHashSet();
        var needed = CallsOfTheKubernetesBackend();
        Assert.Equal(needed.Order(), granted.Order());
    }

    /// <summary>
    /// The (apiGroup/resource:verb) triples the backend's source calls, read from its KubernetesClient
    /// calls (e.g. <c>client.BatchV1.CreateNamespacedJobAsync</c> → <c>batch/jobs:create</c>), plus
    /// <c>batch/jobs/finalizers:update</c> while it sets blockOwnerDeletion on owner references.
    /// </summary>
    public static HashSet<string> CallsOfTheKubernetesBackend()
    {
        var directory = Path.Combine(Repository.Root, "src", "EphemeralCI.Provisioner", "Backends", "Kubernetes");
        var source = string.Join('\n', Directory.EnumerateFiles(directory, "*.cs").Select(File.ReadAllText));
        var needed = new HashSet<string>();
        foreach (Match m in ApiCall().Matches(source))
        {
            var group = m.Groups["api"].Value switch
            {
                "CoreV1" => "",
                "BatchV1" => "batch",
                var other => throw new InvalidOperationException($"the backend calls the {other} API: map it here and grant it in deploy/kubernetes/base/runners/rbac.yaml"),
            };
            var verb = m.Groups["op"].Value switch
            {
                "Create" => "create",
                "Read" => "get",
                "List" => "list",
                "WatchList" => "watch",
                "Delete" => "delete",
                "DeleteCollection" => "deletecollection",
                "Patch" => "patch",
                "Replace" => "update",
                var other => throw new InvalidOperationException($"unmapped KubernetesClient operation '{other}'"),
            };
            var resource = m.Groups["kind"].Value.ToLowerInvariant() + "s";
            needed.Add($"{group}/{resource}:{verb}");
        }
        if (source.Contains("BlockOwnerDeletion = true", StringComparison.Ordinal)) needed.Add("batch/jobs/finalizers:update");
        Assert.NotEmpty(needed); // the scan itself must find the backend's calls
        return needed;
    }

    [Fact]
    public void The_source_scan_reads_the_calls_the_backend_makes()
    {
        // Pins the scan to what the backend is known to do, so a broken regex cannot pass silently.
        var needed = CallsOfTheKubernetesBackend();
        Assert.Contains("batch/jobs:create", needed);
        Assert.Contains("/pods:watch", needed);
        Assert.Contains("/secrets:patch", needed);
    }

    [GeneratedRegex(@"\.(?<api>[A-Z][A-Za-z]*V[0-9][A-Za-z0-9]*)\.(?<op>WatchList|DeleteCollection|Create|Read|List|Delete|Patch|Replace)Namespaced(?<kind>[A-Z][A-Za-z]*?)(?:Status)?Async\(")]
    private static partial Regex ApiCall();
}
