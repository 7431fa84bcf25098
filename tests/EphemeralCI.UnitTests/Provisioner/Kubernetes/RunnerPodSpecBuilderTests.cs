using System.Text;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Backends.Kubernetes;
using k8s;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner.Kubernetes;

public sealed class RunnerPodSpecBuilderTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 26, 10, 0, 0, TimeSpan.Zero);
    private static readonly KubernetesOptions Options = new() { IntakeUrl = "http://intake.ephemeralci.svc:8080" };

    public static RunnerLaunch Launch(Action<RunnerTemplateDefinition>? change = null, int timeoutSeconds = 600, string name = "linux-small")
    {
        var template = new RunnerTemplateDefinition { Backend = "kubernetes", Image = "registry.example/runner:1" };
        change?.Invoke(template);
        return new RunnerLaunch(Guid.Parse("0b5e3a52-6c1f-4f7e-9d6a-2f1c0e9b8a77"), "runner-1", name, template, "the.job.token", Now.AddSeconds(timeoutSeconds));
    }

    /// <summary>Every template shape we render must pass the restricted Pod Security Standard.</summary>
    public static TheoryData<string> Templates => ["default", "big", "other-user", "labels", "tiny", "odd-name", "placed", "egress"];

    private static RunnerLaunch Named(string which) => which switch
    {
        "default" => Launch(),
        "big" => Launch(t => t.Resources = new RunnerResources { CpuMillis = 8000, MemoryMiB = 32768, MaxProcesses = 4096 }, 3600),
        "other-user" => Launch(t => t.RunAsUser = 65532),
        "labels" => Launch(t => t.Labels = new() { ["team"] = "platform", ["example.com/cost-center"] = "ci-42" }),
        "tiny" => Launch(t => t.Resources = new RunnerResources { CpuMillis = 50, MemoryMiB = 64, MaxProcesses = 16 }, 1),
        "odd-name" => Launch(name: "Linux Small / ARM64 (experimental) with a name far longer than any Kubernetes label value may be"),
        "placed" => Launch(t => t.Kubernetes = Placed()),
        "egress" => Launch(t => t.Network = "egress"),
        _ => throw new ArgumentOutOfRangeException(nameof(which)),
    };

    [Theory]
    [MemberData(nameof(Templates))]
    public void Every_rendered_pod_spec_passes_the_restricted_profile(string which)
    {
        var objects = RunnerPodSpecBuilder.Build(Named(which), Options, Now);
        Assert.Empty(RestrictedProfileChecker.Check(objects.Job.Spec.Template.Spec));
    }

    [Theory]
    [MemberData(nameof(Templates))]
    public void Every_rendered_pod_is_locked_down_beyond_the_profile(string which)
    {
        var launch = Named(which);
        var (secret, job) = RunnerPodSpecBuilder.Build(launch, Options, Now);
        var pod = job.Spec.Template.Spec;
        var agent = Assert.Single(pod.Containers);

        Assert.True(agent.SecurityContext.ReadOnlyRootFilesystem);
        Assert.False(pod.AutomountServiceAccountToken);
        Assert.False(pod.EnableServiceLinks);
        Assert.Equal("Never", pod.RestartPolicy);
        Assert.Equal(0, job.Spec.BackoffLimit);
        Assert.Equal(30, job.Spec.TtlSecondsAfterFinished);
        Assert.Equal(launch.Template.RunAsUser, pod.SecurityContext.RunAsUser);
        Assert.Equal(agent.Resources.Limits.Keys.Order(), agent.Resources.Requests.Keys.Order());
        foreach (var (key, value) in agent.Resources.Limits) Assert.Equal(value, agent.Resources.Requests[key]);
        // The agent's container has emptyDirs only, at exactly /workspace, /tmp and the token's memory volume:
        // the token Secret is mounted in the init container alone, so no step can read it.
        var volumes = pod.Volumes.ToDictionary(v => v.Name);
        Assert.Equal(["/tmp", RunnerPodSpecBuilder.TokenDirectory, "/workspace"], agent.VolumeMounts.Select(m => m.MountPath).Order());
        Assert.All(agent.VolumeMounts, m => Assert.NotNull(volumes[m.Name].EmptyDir));
        Assert.Equal("Memory", volumes[agent.VolumeMounts.Single(m => m.MountPath == RunnerPodSpecBuilder.TokenDirectory).Name].EmptyDir.Medium);
        var init = Assert.Single(pod.InitContainers);
        Assert.Contains(init.VolumeMounts, m => volumes[m.Name].Secret is not null && m.ReadOnlyProperty == true);
        Assert.Equal(agent.SecurityContext.RunAsUser, init.SecurityContext.RunAsUser);
        // The token only in the Secret: never in the Job (env, command, annotations).
        Assert.Equal("the.job.token\n", Encoding.UTF8.GetString(secret.Data[RunnerPodSpecBuilder.TokenKey]));
        Assert.DoesNotContain("the.job.token", KubernetesJson.Serialize(job), StringComparison.Ordinal);
        // Labels a selector can find it by, valid however odd the template name.
        foreach (var labels in new[] { job.Metadata.Labels, job.Spec.Template.Metadata.Labels, secret.Metadata.Labels })
        {
            Assert.Equal("ephemeralci", labels[RunnerLabels.ManagedBy]);
            Assert.Equal(launch.JobId.ToString(), labels[RunnerLabels.JobId]);
            Assert.All(labels, l => Assert.True(RunnerLabels.IsValidKey(l.Key) && RunnerLabels.IsValidValue(l.Value), $"{l.Key}={l.Value}"));
        }
        Assert.Equal(launch.TemplateName, job.Metadata.Annotations[RunnerLabels.Template]);
    }

    [Fact]
    public void Resources_deadline_and_agent_command_follow_the_template_and_the_job()
    {
        var launch = Launch(t => t.Resources = new RunnerResources { CpuMillis = 1500, MemoryMiB = 3072, MaxProcesses = 300 }, timeoutSeconds: 754);
        var (_, job) = RunnerPodSpecBuilder.Build(launch, Options, Now.AddMilliseconds(300));
        var agent = job.Spec.Template.Spec.Containers[0];

        Assert.Equal("1500m", agent.Resources.Limits["cpu"].ToString());
        Assert.Equal("3Gi", agent.Resources.Limits["memory"].ToString());
        Assert.Equal("300", job.Metadata.Annotations[RunnerLabels.MaxProcesses]);
        Assert.Equal(754, job.Spec.ActiveDeadlineSeconds); // 753.7 s left, rounded up
        Assert.Equal(["sh", "-c", "exec 3< /var/run/eci/token && rm /var/run/eci/token && exec dotnet /opt/eci/agent/EphemeralCI.RunnerAgent.dll <&3 3<&-"], agent.Command);
        Assert.Equal("0", agent.Env.Single(e => e.Name == "DOTNET_EnableDiagnostics").Value);
        Assert.Equal("http://intake.ephemeralci.svc:8080", agent.Env.Single(e => e.Name == "ECI_INTAKE_URL").Value);
        Assert.Equal(launch.JobId.ToString(), agent.Env.Single(e => e.Name == "ECI_JOB_ID").Value);
        Assert.Equal("/workspace", agent.Env.Single(e => e.Name == "ECI_WORKSPACE").Value);
        Assert.Equal("eci-0b5e3a526c1f4f7e9d6a2f1c0e9b8a77", job.Metadata.Name);
    }

    private static RunnerKubernetesSettings Placed() => new()
    {
        NodeSelector = { ["eci.example.com/pool"] = "runners" },
        Tolerations = [new RunnerToleration { Key = "dedicated", Operator = "Equal", Value = "ci", Effect = "NoSchedule" }],
        RequiredNodeAffinity = [new RunnerNodeRequirement { Key = "kubernetes.io/arch", Operator = "In", Values = ["arm64"] }],
        RuntimeClassName = "gvisor",
        PriorityClassName = "ci-low",
        ImagePullSecrets = ["registry-ci"],
        ServiceAccountName = "builds-wi",
    };

    [Fact]
    public void Placement_fields_place_the_pod_and_change_nothing_it_may_do()
    {
        var (_, job) = RunnerPodSpecBuilder.Build(Launch(t => t.Kubernetes = Placed()), Options, Now);
        var pod = job.Spec.Template.Spec;
        Assert.Equal("runners", pod.NodeSelector["eci.example.com/pool"]);
        var toleration = Assert.Single(pod.Tolerations);
        Assert.Equal(("dedicated", "Equal", "ci", "NoSchedule"), (toleration.Key, toleration.OperatorProperty, toleration.Value, toleration.Effect));
        var requirement = Assert.Single(Assert.Single(pod.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms).MatchExpressions);
        Assert.Equal(("kubernetes.io/arch", "In", "arm64"), (requirement.Key, requirement.OperatorProperty, Assert.Single(requirement.Values)));
        Assert.Equal("gvisor", pod.RuntimeClassName);
        Assert.Equal("ci-low", pod.PriorityClassName);
        Assert.Equal("registry-ci", Assert.Single(pod.ImagePullSecrets).Name);
        Assert.Equal("builds-wi", pod.ServiceAccountName);
        Assert.False(pod.AutomountServiceAccountToken); // a workload-identity account still gets no token mounted
        Assert.Empty(RestrictedProfileChecker.Check(pod));
    }

    [Fact]
    public void Without_placement_the_pod_gets_the_deployments_priority_class_and_nothing_else()
    {
        var options = new KubernetesOptions { IntakeUrl = Options.IntakeUrl, PriorityClassName = "ephemeralci-runner" };
        var pod = RunnerPodSpecBuilder.Build(Launch(), options, Now).Job.Spec.Template.Spec;
        Assert.Equal("ephemeralci-runner", pod.PriorityClassName);
        Assert.Null(pod.NodeSelector);
        Assert.Null(pod.Tolerations);
        Assert.Null(pod.Affinity);
        Assert.Null(pod.RuntimeClassName);
        Assert.Null(pod.ImagePullSecrets);
    }

    [Fact]
    public void The_runners_disk_is_requested_limited_and_caps_its_volumes()
    {
        var pod = RunnerPodSpecBuilder.Build(Launch(t => t.Resources.EphemeralStorageMiB = 2048), Options, Now).Job.Spec.Template.Spec;
        var agent = pod.Containers[0];
        Assert.Equal("2Gi", agent.Resources.Requests["ephemeral-storage"].ToString());
        Assert.Equal("2Gi", agent.Resources.Limits["ephemeral-storage"].ToString());
        Assert.Equal("2Gi", pod.Volumes.Single(v => v.Name == "workspace").EmptyDir.SizeLimit.ToString());
        Assert.Equal("2Gi", pod.Volumes.Single(v => v.Name == "tmp").EmptyDir.SizeLimit.ToString());
    }

    [Theory]
    [InlineData("control-plane")]
    [InlineData("egress")]
    public void The_network_label_follows_the_templates_network_and_no_template_label_can_set_it(string network)
    {
        var launch = Launch(t =>
        {
            t.Network = network;
            t.Labels = new() { [RunnerLabels.Network] = "egress", ["network.ephemeralci.dev/egress"] = "internet" };
        });
        var (secret, job) = RunnerPodSpecBuilder.Build(launch, Options, Now);
        foreach (var labels in new[] { job.Metadata.Labels, job.Spec.Template.Metadata.Labels, secret.Metadata.Labels })
        {
            Assert.Equal(network, labels[RunnerLabels.Network]);
            Assert.False(labels.ContainsKey("network.ephemeralci.dev/egress"));
        }
    }

    [Fact]
    public void A_native_agent_path_is_executed_directly_so_the_image_needs_no_dotnet()
    {
        var options = new KubernetesOptions { IntakeUrl = Options.IntakeUrl, AgentAssemblyPath = "/opt/eci/agent/EphemeralCI.RunnerAgent" };
        var (_, job) = RunnerPodSpecBuilder.Build(Launch(), options, Now.AddMilliseconds(300));
        Assert.Equal(["sh", "-c", "exec 3< /var/run/eci/token && rm /var/run/eci/token && exec /opt/eci/agent/EphemeralCI.RunnerAgent <&3 3<&-"], job.Spec.Template.Spec.Containers[0].Command);
    }

    [Fact]
    public void A_deadline_already_passed_still_gives_a_valid_activeDeadlineSeconds()
    {
        Assert.Equal(1, RunnerPodSpecBuilder.DeadlineSeconds(Now.AddSeconds(-5), Now));
    }

    [Fact]
    public void A_template_cannot_take_over_the_labels_that_select_what_gets_deleted()
    {
        var launch = Launch(t => t.Labels = new() { [RunnerLabels.ManagedBy] = "someone-else", [RunnerLabels.JobId] = Guid.Empty.ToString(), ["team"] = "a" });
        var (_, job) = RunnerPodSpecBuilder.Build(launch, Options, Now);
        Assert.Equal("ephemeralci", job.Metadata.Labels[RunnerLabels.ManagedBy]);
        Assert.Equal(launch.JobId.ToString(), job.Metadata.Labels[RunnerLabels.JobId]);
        Assert.Equal("a", job.Metadata.Labels["team"]);
    }

    [Theory]
    [InlineData("image")]
    [InlineData("root")]
    [InlineData("label")]
    [InlineData("intake")]
    public void Bad_input_is_refused_with_the_reason(string what)
    {
        var options = what == "intake" ? new KubernetesOptions() : Options;
        var launch = what switch
        {
            "image" => Launch(t => t.Image = null),
            "root" => Launch(t => t.RunAsUser = 0),
            "label" => Launch(t => t.Labels = new() { ["bad key!"] = "x" }),
            _ => Launch(),
        };
        var ex = Assert.Throws<ArgumentException>(() => RunnerPodSpecBuilder.Build(launch, options, Now));
        Assert.Contains(what switch { "image" => "no Image", "root" => "RunAsUser 0", "label" => "bad key!", _ => "IntakeUrl" }, ex.Message);
    }

    [Fact]
    public void Pods_learn_where_the_broker_and_the_cache_are_only_when_they_are_configured()
    {
        var bare = Assert.Single(RunnerPodSpecBuilder.Build(Launch(), Options, Now).Job.Spec.Template.Spec.Containers);
        Assert.DoesNotContain(bare.Env, e => e.Name is "ECI_SECRETS_URL" or "ECI_CACHE_URL");

        var wired = new KubernetesOptions
        {
            IntakeUrl = Options.IntakeUrl,
            SecretsBrokerUrl = "http://secrets-broker.ephemeralci.svc",
            CacheUrl = "http://cache.ephemeralci.svc",
        };
        var agent = Assert.Single(RunnerPodSpecBuilder.Build(Launch(), wired, Now).Job.Spec.Template.Spec.Containers);
        Assert.Contains(agent.Env, e => e.Name == "ECI_SECRETS_URL" && e.Value == "http://secrets-broker.ephemeralci.svc");
        Assert.Contains(agent.Env, e => e.Name == "ECI_CACHE_URL" && e.Value == "http://cache.ephemeralci.svc");
    }
}
