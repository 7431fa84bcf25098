using EphemeralCI.DeployTests.Images;
using EphemeralCI.DeployTests.Rendering;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Backends.Kubernetes;
using EphemeralCI.RunnerTemplates;
using k8s.Models;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>
/// The runner templates ConfigMap the platform team edits: read with the real template loader,
/// rendered into runner Jobs with the real pod-spec builder, and checked against the cluster's
/// policies (restricted profile, the egress label), as the provisioner would at run time.
/// </summary>
public sealed class RunnerTemplateTests
{
    public static TheoryData<string> Targets => [.. Manifests.Targets];

    private static IReadOnlyList<LoadedTemplate> Templates(string target) =>
        [.. Manifests.Render(target).ConfigMap(RenderedManifests.ControlPlane, "runner-templates").Data
            .Select(kv => RunnerTemplateLoader.Parse(Path.GetFileNameWithoutExtension(kv.Key), kv.Value, kv.Key))];

    [Theory]
    [MemberData(nameof(Targets))]
    public void The_examples_are_a_dotnet_a_node_and_a_minimal_shell_runner_on_kubernetes(string target)
    {
        var templates = Templates(target);
        // The GitHub Actions examples add the template the adapter's runners run on (overlays/github-actions, examples/github-actions.yaml).
        string[] expected = Manifests.WithGitHubActions.Contains(target) ? ["actions-runner", "dotnet", "node", "shell"] : ["dotnet", "node", "shell"];
        Assert.Equal(expected, templates.Select(t => t.Name).Order());
        Assert.All(templates, t => Assert.Equal(KubernetesRunnerBackend.BackendName, t.Definition.Backend));
        Assert.All(templates, t => Assert.Null(t.Definition.RootFilesystem));
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_template_renders_a_runner_job_that_meets_the_restricted_profile(string target)
    {
        var manifests = Manifests.Render(target);
        var provisioner = manifests.Deployment("provisioner").Spec.Template.Spec.Containers[0].Env.ToDictionary(e => e.Name, e => e.Value);
        var options = new KubernetesOptions
        {
            Namespace = provisioner["Provisioner__Kubernetes__Namespace"],
            IntakeUrl = provisioner["Provisioner__Kubernetes__IntakeUrl"],
            AgentAssemblyPath = provisioner["Provisioner__Kubernetes__AgentAssemblyPath"],
        };
        // The runner images (eng/images.sh) carry the native agent and no dotnet: the runner must exec it directly.
        Assert.Equal(ImageRecipe.NativeAgentPath, options.AgentAssemblyPath);
        var now = DateTimeOffset.UnixEpoch;
        foreach (var template in Templates(target))
        {
            var launch = new RunnerLaunch(Guid.NewGuid(), "runner-1", template.Name, template.Definition, "token", now.AddSeconds(template.Definition.DefaultTimeoutSeconds));
            var job = RunnerPodSpecBuilder.Build(launch, options, now).Job;
            Assert.Empty(RestrictedProfileChecker.Check(job.Spec.Template.Spec));
            Assert.EndsWith($"exec {ImageRecipe.NativeAgentPath} <&3 3<&-", job.Spec.Template.Spec.Containers[0].Command.Last(), StringComparison.Ordinal);
            Assert.Equal(RenderedManifests.Runners, job.Metadata.NamespaceProperty);
            // The runners namespace's policies apply to what the builder made.
            var labels = job.Spec.Template.Metadata.Labels;
            var net = new NetworkPolicyEvaluator(manifests);
            var pod = new PodAddress(RenderedManifests.Runners, labels, System.Net.IPAddress.Parse("10.244.1.8"));
            Assert.Equal(template.Definition.Network == "egress", net.EgressAllowed(pod, System.Net.IPAddress.Parse("198.51.100.7"), 443));
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void A_template_gets_the_internet_from_its_network_mode_never_from_its_own_labels(string target)
    {
        var policy = Manifests.Render(target).NetworkPolicies(RenderedManifests.Runners).Single(p => p.Metadata.Name == "allow-internet-egress");
        foreach (var template in Templates(target))
        {
            Assert.False(NetworkPolicyEvaluator.Matches(policy.Spec.PodSelector, template.Definition.Labels),
                $"runner template '{template.Name}' selects the internet policy with its own labels");
            var launch = new RunnerLaunch(Guid.NewGuid(), "runner-1", template.Name, template.Definition, "token", DateTimeOffset.UnixEpoch.AddMinutes(10));
            var labels = RunnerPodSpecBuilder.Build(launch, new KubernetesOptions { IntakeUrl = "http://intake" }, DateTimeOffset.UnixEpoch).Job.Spec.Template.Metadata.Labels;
            Assert.Equal(template.Definition.Network == "egress", NetworkPolicyEvaluator.Matches(policy.Spec.PodSelector, labels));
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void The_intake_and_the_provisioner_read_the_same_templates(string target)
    {
        // Each job records its template's hash at the intake and the provisioner checks it: both
        // must mount the one ConfigMap at the directory they are told.
        var manifests = Manifests.Render(target);
        foreach (var name in new[] { "intake", "provisioner" })
        {
            var pod = manifests.Deployment(name).Spec.Template.Spec;
            var container = pod.Containers[0];
            var directory = container.Env.Single(e => e.Name == "RunnerTemplates__Directory").Value;
            var mount = Assert.Single(container.VolumeMounts, m => m.MountPath == directory);
            Assert.True(mount.ReadOnlyProperty);
            Assert.Equal(manifests.ConfigMap(RenderedManifests.ControlPlane, "runner-templates").Metadata.Name, pod.Volumes.Single(v => v.Name == mount.Name).ConfigMap?.Name);
        }
    }
}
