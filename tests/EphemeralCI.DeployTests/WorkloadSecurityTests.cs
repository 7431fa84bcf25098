using EphemeralCI.DeployTests.Rendering;
using EphemeralCI.Provisioner.Backends.Kubernetes;
using k8s.Models;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>Every workload we ship, in every kustomization, runs locked down, bounded and probed.</summary>
public sealed class WorkloadSecurityTests
{
    public static TheoryData<string> Targets => [.. Manifests.Targets];

    [Theory]
    [MemberData(nameof(Targets))]
    public void The_services_are_deployed_into_the_control_plane_namespace(string target)
    {
        var manifests = Manifests.Render(target);
        // The GitHub Actions adapter is optional: only where an overlay turns it on.
        string[] expected = Manifests.WithGitHubActions.Contains(target) ? [.. RenderedManifests.Services, "github-actions"] : RenderedManifests.Services;
        Assert.Equal(expected.Order(), manifests.Deployments.Select(d => d.Metadata.Name).Order());
        Assert.All(manifests.Deployments, d => Assert.Equal(RenderedManifests.ControlPlane, d.Metadata.NamespaceProperty));
        // Nothing of ours runs in the runners namespace: only the provisioner puts runners there.
        Assert.DoesNotContain(manifests.PodTemplates(), t => t.Workload.Contains($" {RenderedManifests.Runners}/", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_pod_meets_the_restricted_pod_security_standard(string target)
    {
        foreach (var (workload, template) in Manifests.Render(target).PodTemplates())
        {
            Assert.True(RestrictedProfileChecker.Check(template.Spec).Count == 0,
                $"{workload}: {string.Join("; ", RestrictedProfileChecker.Check(template.Spec))}");
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_container_is_non_root_without_privileges_on_a_read_only_root(string target)
    {
        foreach (var (workload, template) in Manifests.Render(target).PodTemplates())
        {
            var pod = template.Spec;
            Assert.True(pod.SecurityContext?.RunAsNonRoot == true, $"{workload}: pod runAsNonRoot");
            Assert.True(pod.SecurityContext?.RunAsUser is > 0, $"{workload}: pod runAsUser must be a numeric non-root uid (the kubelet cannot check a user name)");
            Assert.Equal("RuntimeDefault", pod.SecurityContext?.SeccompProfile?.Type);
            Assert.NotEqual(true, pod.HostNetwork);
            Assert.NotEqual(true, pod.HostPID);
            Assert.NotEqual(true, pod.HostIPC);
            foreach (var c in AllContainers(pod))
            {
                var where = $"{workload} container {c.Name}";
                var sc = c.SecurityContext;
                Assert.True(sc is not null, $"{where}: no securityContext");
                Assert.True(sc.RunAsNonRoot == true, $"{where}: runAsNonRoot");
                Assert.True(sc.AllowPrivilegeEscalation == false, $"{where}: allowPrivilegeEscalation");
                Assert.True(sc.Privileged != true, $"{where}: privileged");
                Assert.True(sc.ReadOnlyRootFilesystem == true, $"{where}: readOnlyRootFilesystem");
                Assert.True(sc.Capabilities?.Drop?.SequenceEqual(["ALL"]) == true, $"{where}: capabilities.drop must be [ALL]");
                Assert.True(sc.Capabilities?.Add is null or { Count: 0 }, $"{where}: adds capabilities");
                Assert.Equal("RuntimeDefault", sc.SeccompProfile?.Type);
                // A read-only root needs a writable, size-limited /tmp of its own.
                var tmp = c.VolumeMounts?.SingleOrDefault(m => m.MountPath == "/tmp");
                Assert.True(tmp is not null, $"{where}: no /tmp mount");
                var volume = pod.Volumes.Single(v => v.Name == tmp.Name);
                Assert.True(volume.EmptyDir?.SizeLimit is not null, $"{where}: /tmp must be a size-limited emptyDir");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_container_has_cpu_and_memory_requests_and_limits(string target)
    {
        foreach (var (workload, template) in Manifests.Render(target).PodTemplates())
        {
            foreach (var c in AllContainers(template.Spec))
            {
                foreach (var resource in new[] { "cpu", "memory" })
                {
                    Assert.True(c.Resources?.Requests?.ContainsKey(resource) == true, $"{workload} {c.Name}: no {resource} request");
                    Assert.True(c.Resources?.Limits?.ContainsKey(resource) == true, $"{workload} {c.Name}: no {resource} limit");
                    Assert.True(c.Resources.Requests[resource].ToDecimal() <= c.Resources.Limits[resource].ToDecimal(),
                        $"{workload} {c.Name}: {resource} request above its limit");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_service_container_is_probed_on_the_health_endpoints(string target)
    {
        foreach (var deployment in Manifests.Render(target).Deployments)
        {
            var c = Assert.Single(deployment.Spec.Template.Spec.Containers);
            var where = $"{deployment.Metadata.Name}";
            var http = Assert.Single(c.Ports, p => p.Name == "http");
            // /alive answers while the process does; /health also checks Postgres, Redis, RabbitMQ, S3.
            AssertProbe(c.StartupProbe, "/alive", http, where + " startupProbe");
            AssertProbe(c.LivenessProbe, "/alive", http, where + " livenessProbe");
            AssertProbe(c.ReadinessProbe, "/health", http, where + " readinessProbe");
            // Migrations run before the server listens: the startup probe must wait for them.
            Assert.True(c.StartupProbe.PeriodSeconds * c.StartupProbe.FailureThreshold >= 120, $"{where}: startup probe gives up too early for migrations");
        }
    }

    private static void AssertProbe(V1Probe? probe, string path, V1ContainerPort port, string where)
    {
        Assert.True(probe?.HttpGet is not null, $"{where}: missing or not an HTTP probe");
        Assert.Equal(path, probe.HttpGet.Path);
        Assert.True(probe.HttpGet.Port.Value == port.Name || probe.HttpGet.Port.Value == port.ContainerPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            $"{where}: probes port {probe.HttpGet.Port.Value}, the container serves on {port.Name}/{port.ContainerPort}");
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Only_the_provisioner_gets_a_kubernetes_api_token(string target)
    {
        var manifests = Manifests.Render(target);
        foreach (var deployment in manifests.Deployments)
        {
            var name = deployment.Metadata.Name;
            var pod = deployment.Spec.Template.Spec;
            Assert.Equal(name, pod.ServiceAccountName);
            var account = manifests.OfType<V1ServiceAccount>().Single(a => a.Metadata.Name == name && a.Metadata.NamespaceProperty == RenderedManifests.ControlPlane);
            // The account never mounts by default; a pod that needs a token says so itself.
            Assert.False(account.AutomountServiceAccountToken ?? true, $"ServiceAccount {name} mounts its token by default");
            Assert.Equal(name == "provisioner", pod.AutomountServiceAccountToken ?? true);
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Each_service_reads_only_its_own_secret(string target)
    {
        foreach (var deployment in Manifests.Render(target).Deployments)
        {
            var name = deployment.Metadata.Name;
            var pod = deployment.Spec.Template.Spec;
            var container = Assert.Single(pod.Containers);
            var secretRefs = (container.EnvFrom ?? []).Where(e => e.SecretRef is not null).Select(e => e.SecretRef.Name)
                .Concat((container.Env ?? []).Where(e => e.ValueFrom?.SecretKeyRef is not null).Select(e => e.ValueFrom.SecretKeyRef.Name))
                .Concat((pod.Volumes ?? []).Where(v => v.Secret is not null).Select(v => v.Secret.SecretName))
                .Distinct()
                .ToList();
            Assert.Equal([name], secretRefs);
            // A missing Secret must stop the pod from starting, not start it without credentials.
            Assert.All(container.EnvFrom!.Where(e => e.SecretRef is not null), e => Assert.False(e.SecretRef.Optional ?? false));
            // Secret values never sit in the manifests as plain env values.
            Assert.DoesNotContain(container.Env ?? [], e => e.Value is not null && (e.Name.StartsWith("ConnectionStrings__", StringComparison.Ordinal)
                || e.Name.EndsWith("Token", StringComparison.Ordinal) || e.Name.EndsWith("Key", StringComparison.Ordinal)
                || e.Name.Contains("KeyEncryptionKeys", StringComparison.Ordinal)));
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void The_provisioner_runs_two_replicas_rolled_one_pod_at_a_time(string target)
    {
        var provisioner = Manifests.Render(target).Deployment("provisioner");
        // A stopping pod hands its runners' watch to the other (KubernetesHandOverTests): never both gone at once.
        Assert.Equal(2, provisioner.Spec.Replicas);
        Assert.Equal("RollingUpdate", provisioner.Spec.Strategy?.Type);
        Assert.Equal("0", provisioner.Spec.Strategy?.RollingUpdate?.MaxUnavailable?.Value);
        Assert.DoesNotContain(Manifests.Render(target).OfType<V2HorizontalPodAutoscaler>(), h => h.Spec.ScaleTargetRef.Name == "provisioner");
        var env = provisioner.Spec.Template.Spec.Containers[0].Env.ToDictionary(e => e.Name, e => e.Value);
        Assert.Equal(RenderedManifests.Runners, env["Provisioner__Kubernetes__Namespace"]);
        Assert.StartsWith("http://intake.ephemeralci.svc", env["Provisioner__Kubernetes__IntakeUrl"], StringComparison.Ordinal);
    }

    public static TheoryData<string> Production => [.. Manifests.Production];

    [Theory]
    [MemberData(nameof(Production))]
    public void Production_keeps_a_replica_of_each_service_through_node_drains(string target)
    {
        var manifests = Manifests.Render(target);
        foreach (var name in new[] { "intake", "secrets-broker", "cache", "provisioner" })
        {
            // At least two: the Deployment's count, or its autoscaler's floor (which then owns the count).
            var autoscaler = manifests.OfType<V2HorizontalPodAutoscaler>().SingleOrDefault(h => h.Spec.ScaleTargetRef.Name == name);
            Assert.True((autoscaler?.Spec.MinReplicas ?? manifests.Deployment(name).Spec.Replicas) >= 2, $"{target}: {name} replicas");
            var budget = Assert.Single(manifests.OfType<V1PodDisruptionBudget>(), b => b.Metadata.Name == name);
            Assert.True(NetworkPolicyEvaluator.Matches(budget.Spec.Selector, manifests.Deployment(name).Spec.Template.Metadata.Labels), $"{name} budget selects nothing");
        }
    }

    private static IEnumerable<V1Container> AllContainers(V1PodSpec pod) => (pod.InitContainers ?? []).Concat(pod.Containers);
}
