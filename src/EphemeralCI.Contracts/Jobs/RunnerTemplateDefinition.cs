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

public sealed class RunnerResources
{
    /// <summary>CPU in millicores (1000 = one core).</summary>
    public int CpuMillis { get; set; } = 1000;
    public int MemoryMiB { get; set; } = 2048;
    /// <summary>The most processes/threads the runner may have at once (stops fork bombs).</summary>
    public int MaxProcesses { get; set; } = 512;
}
