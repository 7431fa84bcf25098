using System.Globalization;
using System.Text;
using EphemeralCI.Contracts.Jobs;
using k8s.Models;

namespace EphemeralCI.Provisioner.Backends.Kubernetes;

/// <summary>The two objects one runner is made of: its token Secret (created first) and its Job.</summary>
public sealed record RunnerObjects(V1Secret Secret, V1Job Job);

/// <summary>
/// Renders a runner template into a token Secret and a batch/v1 Job. Pure: no I/O, no clock
/// (the caller passes <c>now</c>), so every rendered spec can be checked against the restricted
/// Pod Security Standard in unit tests. What the template does not say is locked down: read-only
/// root, no capabilities, no service-account token, no service links, no retries.
/// </summary>
public static class RunnerPodSpecBuilder
{
    public const string ContainerName = "agent";
    public const string TokenInitContainerName = "job-token";
    public const string WorkspacePath = "/workspace";
    public const string TmpPath = "/tmp";
    /// <summary>A memory-only volume: the init container puts the token here, the agent's shell opens it and deletes it before the agent (or any step) runs.</summary>
    public const string TokenDirectory = "/var/run/eci";
    /// <summary>Where the token Secret is mounted: in the init container only, never where steps run.</summary>
    public const string TokenSecretDirectory = "/var/run/eci-secret";
    public const string TokenKey = "token";
    private const int TokenFileMode = 0x120; // 0440: readable by the runner's group (fsGroup) only

    public static RunnerObjects Build(RunnerLaunch launch, KubernetesOptions options, DateTimeOffset now)
    {
        var template = launch.Template;
        if (string.IsNullOrWhiteSpace(template.Image))
        {
            throw new ArgumentException($"runner template '{launch.TemplateName}' has no Image; the kubernetes backend needs one");
        }
        if (template.RunAsUser <= 0)
        {
            throw new ArgumentException($"runner template '{launch.TemplateName}' has RunAsUser {template.RunAsUser}; runners never run as root");
        }
        if (string.IsNullOrWhiteSpace(options.IntakeUrl))
        {
            throw new ArgumentException($"{KubernetesOptions.Section}:IntakeUrl is not set; runner pods would not know where the intake is");
        }

        var labels = Labels(launch);
        labels[RunnerLabels.Instance] = RunnerLabels.ToLabelValue(options.Instance);
        var annotations = new Dictionary<string, string>
        {
            [RunnerLabels.JobId] = launch.JobId.ToString(),
            [RunnerLabels.RunnerId] = launch.RunnerId,
            [RunnerLabels.Template] = launch.TemplateName,
            [RunnerLabels.Deadline] = launch.Deadline.ToString("O", CultureInfo.InvariantCulture),
            // Kubernetes has no per-pod process limit in the spec (it is the kubelet's podPidsLimit);
            // recorded so the audit shows what the template asked for.
            [RunnerLabels.MaxProcesses] = template.Resources.MaxProcesses.ToString(CultureInfo.InvariantCulture),
        };

        var secret = new V1Secret
        {
            ApiVersion = "v1",
            Kind = "Secret",
            Metadata = new V1ObjectMeta
            {
                Name = RunnerLabels.SecretName(launch.JobId),
                NamespaceProperty = options.Namespace,
                Labels = new Dictionary<string, string>(labels),
                Annotations = new Dictionary<string, string>(annotations),
            },
            Type = "Opaque",
            Immutable = true,
            Data = new Dictionary<string, byte[]> { [TokenKey] = Encoding.UTF8.GetBytes(launch.JobToken + "\n") },
        };

        var job = new V1Job
        {
            ApiVersion = "batch/v1",
            Kind = "Job",
            Metadata = new V1ObjectMeta
            {
                Name = RunnerLabels.JobName(launch.JobId),
                NamespaceProperty = options.Namespace,
                Labels = new Dictionary<string, string>(labels),
                Annotations = new Dictionary<string, string>(annotations),
            },
            Spec = new V1JobSpec
            {
                // One pod, never retried: a job runs in exactly one brand-new runner.
                BackoffLimit = 0,
                Completions = 1,
                Parallelism = 1,
                ActiveDeadlineSeconds = DeadlineSeconds(launch.Deadline, now),
                TtlSecondsAfterFinished = options.TtlSecondsAfterFinished,
                Template = new V1PodTemplateSpec
                {
                    Metadata = new V1ObjectMeta
                    {
                        Labels = new Dictionary<string, string>(labels),
                        Annotations = new Dictionary<string, string>(annotations),
                    },
                    Spec = PodSpec(launch, options),
                },
            },
        };
        return new RunnerObjects(secret, job);
    }

    /// <summary>Whole seconds until the deadline, at least 1 (Kubernetes rejects 0).</summary>
    public static long DeadlineSeconds(DateTimeOffset deadline, DateTimeOffset now) =>
        Math.Max(1, (long)Math.Ceiling((deadline - now).TotalSeconds));

    private static Dictionary<string, string> Labels(RunnerLaunch launch)
    {
        var labels = new Dictionary<string, string>();
        foreach (var (key, value) in launch.Template.Labels)
        {
            if (RunnerLabels.IsReserved(key)) continue; // ours decide what gets selected and deleted
            if (!RunnerLabels.IsValidKey(key) || !RunnerLabels.IsValidValue(value))
            {
                throw new ArgumentException($"runner template '{launch.TemplateName}' has label '{key}={value}', which is not a valid Kubernetes label");
            }
            labels[key] = value;
        }
        labels[RunnerLabels.ManagedBy] = RunnerLabels.ManagedByValue;
        labels[RunnerLabels.Component] = RunnerLabels.ComponentValue;
        labels[RunnerLabels.JobId] = launch.JobId.ToString();
        labels[RunnerLabels.Template] = RunnerLabels.ToLabelValue(launch.TemplateName);
        labels[RunnerLabels.Network] = launch.Template.Network;
        return labels;
    }

    private static V1EnvVar Env(string name, string? value) => new() { Name = name, Value = value };

    private static V1PodSpec PodSpec(RunnerLaunch launch, KubernetesOptions options)
    {
        var template = launch.Template;
        long uid = template.RunAsUser;
        var disk = template.Resources.EphemeralStorageMiB;
        var resources = new Dictionary<string, ResourceQuantity>
        {
            ["cpu"] = new(template.Resources.CpuMillis.ToString(CultureInfo.InvariantCulture) + "m"),
            ["memory"] = new(template.Resources.MemoryMiB.ToString(CultureInfo.InvariantCulture) + "Mi"),
            // The kubelet evicts this pod, not its neighbours, when the job fills its disk.
            ["ephemeral-storage"] = new(disk.ToString(CultureInfo.InvariantCulture) + "Mi"),
        };
        var placement = template.Kubernetes ?? new RunnerKubernetesSettings();

        return new V1PodSpec
        {
            RestartPolicy = "Never",
            AutomountServiceAccountToken = false,
            ServiceAccountName = placement.ServiceAccountName ?? options.ServiceAccountName,
            // Where it runs is the template's; what it may do is not (below).
            NodeSelector = placement.NodeSelector.Count > 0 ? new Dictionary<string, string>(placement.NodeSelector) : null,
            Tolerations = placement.Tolerations.Count > 0
                ? placement.Tolerations.Select(t => new V1Toleration { Key = t.Key, OperatorProperty = t.Operator, Value = t.Value, Effect = t.Effect, TolerationSeconds = t.TolerationSeconds }).ToList()
                : null,
            Affinity = placement.RequiredNodeAffinity.Count > 0
                ? new V1Affinity
                {
                    NodeAffinity = new V1NodeAffinity
                    {
                        RequiredDuringSchedulingIgnoredDuringExecution = new V1NodeSelector
                        {
                            NodeSelectorTerms =
                            [
                                new V1NodeSelectorTerm
                                {
                                    MatchExpressions = placement.RequiredNodeAffinity
                                        .Select(r => new V1NodeSelectorRequirement { Key = r.Key, OperatorProperty = r.Operator, Values = r.Values.Count > 0 ? r.Values.ToList() : null })
                                        .ToList(),
                                },
                            ],
                        },
                    },
                }
                : null,
            RuntimeClassName = placement.RuntimeClassName,
            PriorityClassName = placement.PriorityClassName ?? options.PriorityClassName,
            ImagePullSecrets = placement.ImagePullSecrets.Count > 0 ? placement.ImagePullSecrets.Select(n => new V1LocalObjectReference { Name = n }).ToList() : null,
            EnableServiceLinks = false,
            HostNetwork = false,
            HostPID = false,
            HostIPC = false,
            TerminationGracePeriodSeconds = options.TerminationGracePeriodSeconds,
            SecurityContext = new V1PodSecurityContext
            {
                RunAsNonRoot = true,
                RunAsUser = uid,
                RunAsGroup = uid,
                FsGroup = uid,
                SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
            },
            Volumes =
            [
                // Both on the node's disk, within the pod's ephemeral-storage limit; each capped at it too.
                new V1Volume { Name = "workspace", EmptyDir = new V1EmptyDirVolumeSource { SizeLimit = new ResourceQuantity(disk.ToString(CultureInfo.InvariantCulture) + "Mi") } },
                new V1Volume { Name = "tmp", EmptyDir = new V1EmptyDirVolumeSource { SizeLimit = new ResourceQuantity(disk.ToString(CultureInfo.InvariantCulture) + "Mi") } },
                new V1Volume
                {
                    Name = "job-token-secret",
                    Secret = new V1SecretVolumeSource { SecretName = RunnerLabels.SecretName(launch.JobId), DefaultMode = TokenFileMode },
                },
                // tmpfs: the copy never touches the node's disk.
                new V1Volume { Name = "job-token", EmptyDir = new V1EmptyDirVolumeSource { Medium = "Memory", SizeLimit = new ResourceQuantity("64Ki") } },
            ],
            // The Secret is mounted here only. Steps run in the agent's container, as the agent's uid
            // (the restricted profile leaves no capability to switch users), so the token must be out
            // of reach by the time any step exists: this copies it into the memory volume, and the
            // agent's container opens that copy and deletes it before the agent starts.
            InitContainers =
            [
                new V1Container
                {
                    Name = TokenInitContainerName,
                    Image = template.Image,
                    ImagePullPolicy = "IfNotPresent",
                    Command = ["sh", "-c", $"umask 077 && cat {TokenSecretDirectory}/{TokenKey} > {TokenDirectory}/{TokenKey}"],
                    Resources = new V1ResourceRequirements
                    {
                        Requests = new Dictionary<string, ResourceQuantity>(resources),
                        Limits = new Dictionary<string, ResourceQuantity>(resources),
                    },
                    SecurityContext = ContainerSecurity(uid),
                    VolumeMounts =
                    [
                        new V1VolumeMount { Name = "job-token-secret", MountPath = TokenSecretDirectory, ReadOnlyProperty = true },
                        new V1VolumeMount { Name = "job-token", MountPath = TokenDirectory },
                    ],
                },
            ],
            Containers =
            [
                new V1Container
                {
                    Name = ContainerName,
                    Image = template.Image,
                    ImagePullPolicy = "IfNotPresent",
                    // The token's only way in is a file, handed to the agent on stdin exactly as the local
                    // sandbox does; it is never in the environment or the command line. The file is
                    // deleted once open (a failed delete stops the pod), so no step finds it; the open
                    // descriptor is the non-dumpable agent's, which no step can read.
                    Command = ["sh", "-c", AgentShell(options.AgentAssemblyPath)],
                    WorkingDir = WorkspacePath,
                    Env =
                    [
                        Env("ECI_INTAKE_URL", options.IntakeUrl),
                        Env("ECI_JOB_ID", launch.JobId.ToString()),
                        Env("ECI_WORKSPACE", WorkspacePath),
                        Env("HOME", TmpPath),
                        Env("TMPDIR", TmpPath),
                        // No diagnostics socket a step could attach a profiler through (steps do not inherit this).
                        Env("DOTNET_EnableDiagnostics", "0"),
                        .. string.IsNullOrWhiteSpace(options.SecretsBrokerUrl) ? Array.Empty<V1EnvVar>() : [Env("ECI_SECRETS_URL", options.SecretsBrokerUrl)],
                        .. string.IsNullOrWhiteSpace(options.CacheUrl) ? Array.Empty<V1EnvVar>() : [Env("ECI_CACHE_URL", options.CacheUrl)],
                    ],
                    Resources = new V1ResourceRequirements
                    {
                        // requests = limits: Guaranteed QoS, so a runner gets what its template says and no more.
                        Requests = new Dictionary<string, ResourceQuantity>(resources),
                        Limits = new Dictionary<string, ResourceQuantity>(resources),
                    },
                    SecurityContext = ContainerSecurity(uid),
                    VolumeMounts =
                    [
                        new V1VolumeMount { Name = "workspace", MountPath = WorkspacePath },
                        new V1VolumeMount { Name = "tmp", MountPath = TmpPath },
                        new V1VolumeMount { Name = "job-token", MountPath = TokenDirectory },
                    ],
                },
            ],
        };
    }

    private static V1SecurityContext ContainerSecurity(long uid) => new()
    {
        Privileged = false,
        AllowPrivilegeEscalation = false,
        ReadOnlyRootFilesystem = true,
        RunAsNonRoot = true,
        RunAsUser = uid,
        RunAsGroup = uid,
        Capabilities = new V1Capabilities { Drop = ["ALL"] },
        SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
    };

    /// <summary>Opens the token copy as fd 3, deletes it, then becomes the agent with that descriptor as its stdin.</summary>
    public static string AgentShell(string agentPath) =>
        $"exec 3< {TokenDirectory}/{TokenKey} && rm {TokenDirectory}/{TokenKey} && exec {AgentCommand(agentPath)} <&3 3<&-";

    /// <summary>A managed agent (.dll) runs on the image's dotnet; the native agent needs only the image's C library.</summary>
    private static string AgentCommand(string agentPath) =>
        agentPath.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? $"dotnet {agentPath}" : agentPath;
}
