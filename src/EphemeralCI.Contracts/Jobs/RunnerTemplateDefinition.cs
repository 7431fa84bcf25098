namespace EphemeralCI.Contracts.Jobs;

/// <summary>
/// One entry of the <c>RunnerTemplates</c> configuration section (the child key is the template
/// name). The intake and the provisioner bind the same section, so these names are shared: add
/// properties, never rename them. A job can narrow what its template allows, never widen it.
/// </summary>
public sealed class RunnerTemplateDefinition
{
    public const string Section = "RunnerTemplates";

    /// <summary>The template that exists when the section is empty.</summary>
    public const string DefaultName = "default";

    /// <summary>Which provisioner backend creates runners from this template ("local", "kubernetes").</summary>
    public string Backend { get; set; } = "local";

    /// <summary>Used when a job does not ask for a timeout.</summary>
    public int DefaultTimeoutSeconds { get; set; } = 600;

    /// <summary>The most a job may ask for: a job can narrow its template, never widen it.</summary>
    public int MaxTimeoutSeconds { get; set; } = 3600;

    /// <summary>Kubernetes: the runner image (pinned by tag or digest); it must contain bash and the .NET runtime for the agent.</summary>
    public string? Image { get; set; }

    /// <summary>Local: a base root filesystem directory (e.g. made with debootstrap) the job gets a private overlay of; null = the host's /usr read-only.</summary>
    public string? RootFilesystem { get; set; }

    /// <summary>CPU, memory and process limits of one runner.</summary>
    public RunnerResources Resources { get; set; } = new();

    /// <summary>"none" (loopback only), "control-plane" (only the EphemeralCI services, through sockets) or "egress" (outbound, never host or private ranges).</summary>
    public string Network { get; set; } = "control-plane";

    /// <summary>The unprivileged user the job runs as.</summary>
    public int RunAsUser { get; set; } = 1000;

    /// <summary>
    /// Local backend: how many runners of this template to keep started ahead of demand (sandbox and
    /// agent up, waiting for a job). Each serves exactly one job and is destroyed like any other; 0 = none.
    /// </summary>
    public int WarmPool { get; set; }

    /// <summary>Free-form labels, copied to the runner (pod labels on Kubernetes) and the audit trail.</summary>
    public Dictionary<string, string> Labels { get; set; } = [];

    /// <summary>Explicit relaxations of the local sandbox's defaults; each is named on the job's timeline.</summary>
    public RunnerSandboxSettings Sandbox { get; set; } = new();

    /// <summary>Kubernetes backend: where runner pods go and what they run with (node pools, taints, gVisor/Kata, pull secrets).</summary>
    public RunnerKubernetesSettings Kubernetes { get; set; } = new();

    /// <summary>The relaxations this template asks for, as the job's timeline names them (empty: the full sandbox).</summary>
    public IReadOnlyList<string> Relaxations() =>
        Sandbox?.AllowUserNamespaces == true ? [RunnerSandboxSettings.AllowUserNamespacesRelaxation] : [];
}

public sealed class RunnerSandboxSettings
{
    public const string AllowUserNamespacesRelaxation = "sandbox.allowUserNamespaces: steps may create user namespaces (rootless container builds)";

    /// <summary>
    /// Local backend: let steps create nested user namespaces (rootless podman/buildah need them).
    /// Off by default: a nested namespace gives a step CAP_SYS_ADMIN and CAP_NET_ADMIN over kernel code
    /// (nf_tables, mounts) behind most recent kernel privilege escalations.
    /// </summary>
    public bool AllowUserNamespaces { get; set; }
}

/// <summary>
/// Pod placement and isolation of a Kubernetes runner. Everything security-relevant (user, capabilities,
/// root filesystem, service-account token, host namespaces, network) stays the backend's: a template
/// chooses where a runner goes, never what it may do.
/// </summary>
public sealed class RunnerKubernetesSettings
{
    /// <summary>Node labels the pod's node must have (e.g. a runner node pool).</summary>
    public Dictionary<string, string> NodeSelector { get; set; } = [];

    /// <summary>Taints the pod tolerates (e.g. a dedicated runner pool's <c>NoSchedule</c> taint).</summary>
    public List<RunnerToleration> Tolerations { get; set; } = [];

    /// <summary>Required node affinity: every requirement must hold (one node-selector term).</summary>
    public List<RunnerNodeRequirement> RequiredNodeAffinity { get; set; } = [];

    /// <summary>A RuntimeClass (e.g. <c>gvisor</c>, <c>kata</c>) for untrusted builds; null = the cluster's default runtime.</summary>
    public string? RuntimeClassName { get; set; }

    /// <summary>A PriorityClass for the pod; null = the deployment's runner class (below the control plane's).</summary>
    public string? PriorityClassName { get; set; }

    /// <summary>Secrets (in the runners namespace) to pull a private runner image with.</summary>
    public List<string> ImagePullSecrets { get; set; } = [];

    /// <summary>
    /// A service account the operator made in the runners namespace (e.g. annotated for cloud workload
    /// identity); null = the backend's. Its token is still never mounted.
    /// </summary>
    public string? ServiceAccountName { get; set; }

    /// <summary>Whether anything is set (so the template's hash changes only for templates that use it).</summary>
    public bool IsSet() => NodeSelector.Count > 0 || Tolerations.Count > 0 || RequiredNodeAffinity.Count > 0
        || RuntimeClassName is not null || PriorityClassName is not null || ImagePullSecrets.Count > 0 || ServiceAccountName is not null;
}

public sealed class RunnerToleration
{
    public string? Key { get; set; }
    /// <summary>"Equal" (default) or "Exists".</summary>
    public string Operator { get; set; } = "Equal";
    public string? Value { get; set; }
    /// <summary>"NoSchedule", "PreferNoSchedule", "NoExecute", or null for all.</summary>
    public string? Effect { get; set; }
    public long? TolerationSeconds { get; set; }
}

public sealed class RunnerNodeRequirement
{
    public string Key { get; set; } = "";
    /// <summary>"In", "NotIn", "Exists", "DoesNotExist", "Gt" or "Lt".</summary>
    public string Operator { get; set; } = "In";
    public List<string> Values { get; set; } = [];
}

public sealed class RunnerResources
{
    /// <summary>CPU in millicores (1000 = one core).</summary>
    public int CpuMillis { get; set; } = 1000;
    public int MemoryMiB { get; set; } = 2048;
    /// <summary>The most processes/threads the runner may have at once (stops fork bombs).</summary>
    public int MaxProcesses { get; set; } = 512;
    /// <summary>
    /// Kubernetes: the runner's disk (workspace and /tmp), as the pod's ephemeral-storage request and
    /// limit and its volumes' size limits, so a job filling its disk is evicted alone, not its node.
    /// </summary>
    public int EphemeralStorageMiB { get; set; } = 10240;
}
