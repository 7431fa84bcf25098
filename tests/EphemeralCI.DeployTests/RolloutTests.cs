using EphemeralCI.DeployTests.Rendering;
using k8s.Models;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>
/// What an apply or an upgrade does to running pods: configuration changes roll them, autoscaled
/// replicas are not reset, replicas drain before they stop, Pod Security does not move under them.
/// </summary>
public sealed class RolloutTests
{
    public static TheoryData<string> Targets => [.. Manifests.Targets];

    [Theory]
    [MemberData(nameof(Targets))]
    public void An_autoscaled_deployment_states_no_replicas(string target)
    {
        var manifests = Manifests.Render(target);
        Assert.Empty(AutoscaledWithReplicas(manifests));
    }

    [Fact]
    public void Production_autoscales_the_intake_and_the_check_catches_a_stated_count()
    {
        foreach (var target in Manifests.Production)
        {
            var manifests = Manifests.RenderFresh(target);
            Assert.Contains(manifests.OfType<V2HorizontalPodAutoscaler>(), h => h.Spec.ScaleTargetRef.Name == "intake");
            // Broken on purpose: a count beside the autoscaler is found.
            manifests.Deployment("intake").Spec.Replicas = 2;
            Assert.Equal(["intake"], AutoscaledWithReplicas(manifests));
        }
    }

    private static List<string> AutoscaledWithReplicas(RenderedManifests manifests) =>
        [.. manifests.OfType<V2HorizontalPodAutoscaler>()
            .Select(h => manifests.Deployment(h.Spec.ScaleTargetRef.Name))
            .Where(d => d.Spec.Replicas is not null)
            .Select(d => d.Metadata.Name)];

    [Theory]
    [MemberData(nameof(Targets))]
    public void Pod_security_is_enforced_at_a_pinned_version(string target)
    {
        var manifests = Manifests.Render(target);
        foreach (var ns in new[] { RenderedManifests.ControlPlane, RenderedManifests.Runners })
        {
            var labels = manifests.Namespace(ns).Metadata.Labels;
            Assert.Matches("^v1\\.[0-9]+$", labels["pod-security.kubernetes.io/enforce-version"]);
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Serving_replicas_drain_before_they_stop(string target)
    {
        foreach (var deployment in Manifests.Render(target).Deployments.Where(d => d.Metadata.Name != "provisioner"))
        {
            var pod = deployment.Spec.Template.Spec;
            var sleep = pod.Containers[0].Lifecycle?.PreStop?.Sleep?.Seconds;
            Assert.True(sleep is >= 3, $"{target} {deployment.Metadata.Name}: no preStop sleep while endpoints drop the pod");
            // The sleep plus ASP.NET Core's 30 s shutdown timeout fit in the grace period.
            Assert.True(pod.TerminationGracePeriodSeconds >= sleep + 30, $"{target} {deployment.Metadata.Name}: terminationGracePeriodSeconds {pod.TerminationGracePeriodSeconds} < preStop {sleep} + 30");
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void A_runner_template_change_changes_the_pod_templates_that_read_them(string target)
    {
        // Kustomize: the generated ConfigMap's name carries a hash of its contents; Helm: a checksum annotation.
        var manifests = Manifests.Render(target);
        var configMap = manifests.ConfigMap(RenderedManifests.ControlPlane, "runner-templates").Metadata.Name;
        foreach (var name in new[] { "intake", "provisioner" })
        {
            var template = manifests.Deployment(name).Spec.Template;
            if (Helm.IsHelmTarget(target))
            {
                Assert.Matches("^[0-9a-f]{64}$", template.Metadata.Annotations["checksum/runner-templates"]);
            }
            else
            {
                Assert.NotEqual("runner-templates", configMap);
                Assert.Contains(template.Spec.Volumes, v => v.ConfigMap?.Name == configMap);
            }
        }
    }

    [Fact]
    public void Editing_a_template_in_the_kustomize_base_rolls_the_intake_and_the_provisioner()
    {
        // A copy of deploy/kubernetes with one template edited renders different pod templates.
        var copy = Directory.CreateTempSubdirectory("eci-kustomize-");
        try
        {
            CopyDirectory(Path.Combine(Repository.Root, "deploy", "kubernetes"), copy.FullName);
            var before = Kustomize.Load(RenderCopy(copy.FullName));
            File.AppendAllText(Path.Combine(copy.FullName, "base", "runner-templates", "shell.yaml"), "# edited\n");
            var after = Kustomize.Load(RenderCopy(copy.FullName));
            foreach (var name in new[] { "intake", "provisioner" })
            {
                Assert.NotEqual(
                    Volumes(before.Deployment(name)).Single(v => v.ConfigMap is not null).ConfigMap.Name,
                    Volumes(after.Deployment(name)).Single(v => v.ConfigMap is not null).ConfigMap.Name);
            }
        }
        finally
        {
            copy.Delete(recursive: true);
        }
    }

    [Fact]
    public void Changing_a_runner_template_value_changes_the_charts_pod_templates()
    {
        var before = Kustomize.Load(Helm.RenderText());
        var after = Kustomize.Load(Helm.RenderText("--set", "runnerTemplates.shell.maxTimeoutSeconds=1800"));
        foreach (var name in new[] { "intake", "provisioner" })
        {
            Assert.NotEqual(
                before.Deployment(name).Spec.Template.Metadata.Annotations["checksum/runner-templates"],
                after.Deployment(name).Spec.Template.Metadata.Annotations["checksum/runner-templates"]);
        }
        // Every service's pod template carries its Secret's checksum (looked up on install and upgrade).
        Assert.All(before.Deployments, d => Assert.Matches("^[0-9a-f]{64}$", d.Spec.Template.Metadata.Annotations["checksum/secret"]));
    }

    public static TheoryData<string> Production => [.. Manifests.Production];

    [Theory]
    [MemberData(nameof(Production))]
    public void Production_pulls_with_a_registry_credential(string target)
    {
        foreach (var (workload, template) in Manifests.Render(target).PodTemplates())
        {
            Assert.True(template.Spec.ImagePullSecrets is { Count: > 0 }, $"{target} {workload}: no imagePullSecrets");
        }
    }

    private static IList<V1Volume> Volumes(V1Deployment d) => d.Spec.Template.Spec.Volumes;

    private static string RenderCopy(string root)
    {
        var start = new System.Diagnostics.ProcessStartInfo(Kustomize.Kubectl(), ["kustomize", Path.Combine(root, "overlays", "dev")])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = System.Diagnostics.Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, stderr.Result);
        return stdout.Result;
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        }
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
        }
    }
}
