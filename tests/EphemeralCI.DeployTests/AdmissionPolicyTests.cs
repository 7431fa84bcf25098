using EphemeralCI.Contracts.Jobs;
using EphemeralCI.DeployTests.Rendering;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Backends.Kubernetes;
using k8s.Models;
using Xunit;

namespace EphemeralCI.DeployTests;

/// <summary>
/// The runners namespace's ValidatingAdmissionPolicy, evaluated on what the provisioner really sends
/// (admitted) and on what a compromised provisioner could send instead (each refused, with its reason).
/// </summary>
public sealed class AdmissionPolicyTests
{
    public static TheoryData<string> Targets => [.. Kustomize.Targets];

    private static AdmissionPolicyEvaluator Policy(string target) =>
        new(Kustomize.Render(target).OfType<V1ValidatingAdmissionPolicy>().Single(p => p.Metadata.Name == "ephemeralci-runners"));

    private static V1Job RunnerJob(Action<RunnerTemplateDefinition>? change = null)
    {
        var template = new RunnerTemplateDefinition
        {
            Backend = "kubernetes",
            Image = "registry.example.com/ephemeralci/runner-shell:0.1.0",
            Kubernetes = { RuntimeClassName = "gvisor", NodeSelector = { ["pool"] = "runners" } },
        };
        change?.Invoke(template);
        var launch = new RunnerLaunch(Guid.NewGuid(), "runner-1", "shell", template, "token", DateTimeOffset.UnixEpoch.AddMinutes(10));
        return RunnerPodSpecBuilder.Build(launch, new KubernetesOptions { IntakeUrl = "http://intake.ephemeralci.svc" }, DateTimeOffset.UnixEpoch).Job;
    }

    /// <summary>The pod the Job controller makes from the Job's template.</summary>
    private static V1Pod PodOf(V1Job job) => new()
    {
        ApiVersion = "v1",
        Kind = "Pod",
        Metadata = new V1ObjectMeta { Name = job.Metadata.Name + "-abcde", NamespaceProperty = job.Metadata.NamespaceProperty, Labels = job.Spec.Template.Metadata.Labels },
        Spec = job.Spec.Template.Spec,
    };

    [Theory]
    [MemberData(nameof(Targets))]
    public void What_the_provisioner_sends_is_admitted(string target)
    {
        var policy = Policy(target);
        foreach (var network in new[] { "control-plane", "egress" })
        {
            var job = RunnerJob(t => t.Network = network);
            Assert.Empty(policy.Refusals(job));
            Assert.Empty(policy.Refusals(PodOf(job)));
        }
    }

    public static TheoryData<string, string> Attacks => new()
    {
        { "not a runner", "only EphemeralCI runners" },
        { "no network label", "network.ephemeralci.dev/mode" },
        { "internet label by hand", "network.ephemeralci.dev/mode" },
        { "image from elsewhere", "allowed registries" },
        { "init image from elsewhere", "allowed registries" },
        { "service-account token", "service-account token" },
        { "hostPath", "emptyDirs and the job's own token Secret only" },
        { "another Secret", "emptyDirs and the job's own token Secret only" },
        { "projected token", "emptyDirs and the job's own token Secret only" },
        { "host network", "share no host or pod namespace" },
        { "host pid", "share no host or pod namespace" },
        { "pinned node", "never pinned with nodeName" },
        { "root", "non-root" },
        { "privileged", "drop all capabilities" },
        { "added capability", "drop all capabilities" },
        { "escalation", "drop all capabilities" },
    };

    [Theory]
    [MemberData(nameof(Attacks))]
    public void What_a_compromised_provisioner_could_send_is_refused_with_its_reason(string attack, string reason)
    {
        var job = RunnerJob();
        var labels = job.Spec.Template.Metadata.Labels;
        var pod = job.Spec.Template.Spec;
        var agent = pod.Containers[0];
        switch (attack)
        {
            case "not a runner": labels.Remove(RunnerLabels.ManagedBy); break;
            case "no network label": labels.Remove(RunnerLabels.Network); break;
            case "internet label by hand": labels[RunnerLabels.Network] = "internet"; break;
            case "image from elsewhere": agent.Image = "docker.io/attacker/miner:latest"; break;
            case "init image from elsewhere": pod.InitContainers[0].Image = "registry.example.com.evil.io/x:1"; break;
            case "service-account token": pod.AutomountServiceAccountToken = true; break;
            case "hostPath": pod.Volumes.Add(new V1Volume { Name = "host", HostPath = new V1HostPathVolumeSource { Path = "/var/run/containerd" } }); break;
            case "another Secret": pod.Volumes.Add(new V1Volume { Name = "s", Secret = new V1SecretVolumeSource { SecretName = "cloud-credentials" } }); break;
            case "projected token":
                pod.Volumes.Add(new V1Volume { Name = "t", Projected = new V1ProjectedVolumeSource { Sources = [new V1VolumeProjection { ServiceAccountToken = new V1ServiceAccountTokenProjection { Path = "token" } }] } });
                break;
            case "host network": pod.HostNetwork = true; break;
            case "host pid": pod.HostPID = true; break;
            case "pinned node": pod.NodeName = "control-plane-node-1"; break;
            case "root": pod.SecurityContext.RunAsNonRoot = false; break;
            case "privileged": agent.SecurityContext.Privileged = true; break;
            case "added capability": agent.SecurityContext.Capabilities.Add = ["SYS_ADMIN"]; break;
            case "escalation": agent.SecurityContext.AllowPrivilegeEscalation = true; break;
            default: throw new ArgumentOutOfRangeException(nameof(attack));
        }
        foreach (var target in Kustomize.Targets)
        {
            var policy = Policy(target);
            Assert.Contains(policy.Refusals(job), m => m.Contains(reason, StringComparison.Ordinal));
            Assert.Contains(policy.Refusals(PodOf(job)), m => m.Contains(reason, StringComparison.Ordinal));
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void The_policy_is_bound_to_the_runners_namespace_and_denies(string target)
    {
        var binding = Kustomize.Render(target).OfType<V1ValidatingAdmissionPolicyBinding>().Single(b => b.Spec.PolicyName == "ephemeralci-runners");
        Assert.Equal(["Deny"], binding.Spec.ValidationActions);
        Assert.Equal(RenderedManifests.Runners, binding.Spec.MatchResources.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]);
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void The_runners_namespace_has_a_quota_and_limits_and_the_control_plane_outranks_runners(string target)
    {
        var m = Kustomize.Render(target);
        var quota = m.OfType<V1ResourceQuota>().Single(q => q.Metadata.NamespaceProperty == RenderedManifests.Runners);
        foreach (var key in new[] { "pods", "requests.cpu", "limits.memory", "requests.ephemeral-storage" }) Assert.True(quota.Spec.Hard.ContainsKey(key), key);
        Assert.Single(m.OfType<V1LimitRange>(), l => l.Metadata.NamespaceProperty == RenderedManifests.Runners);

        var classes = m.OfType<V1PriorityClass>().ToDictionary(p => p.Metadata.Name, p => p.Value);
        Assert.True(classes["ephemeralci-control-plane"] > classes["ephemeralci-runner"]);
        Assert.All(m.Deployments, d => Assert.Equal("ephemeralci-control-plane", d.Spec.Template.Spec.PriorityClassName));
        var provisioner = m.Deployment("provisioner").Spec.Template.Spec.Containers[0].Env.ToDictionary(e => e.Name, e => e.Value);
        Assert.Equal("ephemeralci-runner", provisioner["Provisioner__Kubernetes__PriorityClassName"]);
    }
}
