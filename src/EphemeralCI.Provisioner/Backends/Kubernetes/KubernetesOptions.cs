namespace EphemeralCI.Provisioner.Backends.Kubernetes;

/// <summary>
/// Configuration of the Kubernetes backend (section <c>Provisioner:Kubernetes</c>; the backend
/// exists only when the section does). Connection: <see cref="ApiServer"/> if set, else the
/// kubeconfig at <see cref="KubeConfig"/>, else the in-cluster service account.
/// </summary>
public sealed class KubernetesOptions
{
    public const string Section = "Provisioner:Kubernetes";

    /// <summary>The namespace runners live in, and nothing else: the backend deletes what it labelled there.</summary>
    public string Namespace { get; set; } = "ephemeralci-runners";

    /// <summary>
    /// This provisioner's name on its runners (label <c>ephemeralci.dev/instance</c>). It lists, watches
    /// and reaps only runners with its own value, so two provisioners (two deployments, two regions of
    /// one product) may share a namespace without deleting each other's runners. Max 63 label characters.
    /// </summary>
    public string Instance { get; set; } = "default";

    /// <summary>A kubeconfig file; null = in-cluster configuration.</summary>
    public string? KubeConfig { get; set; }

    /// <summary>
    /// The kubeconfig's text itself (<c>Provisioner:Kubernetes:KubeConfigContent</c>), for hosts that can
    /// hand a secret setting but no file, such as Azure Container Apps deployed by azd. Treat it as a secret.
    /// </summary>
    public string? KubeConfigContent { get; set; }

    /// <summary>The context of <see cref="KubeConfig"/> (or <see cref="KubeConfigContent"/>) to use; null = its current context.</summary>
    public string? KubeConfigContext { get; set; }

    /// <summary>A plain API server URL with no credentials (the test suite's fake API server).</summary>
    public string? ApiServer { get; set; }

    /// <summary>How pods reach the intake (the in-cluster service URL), given to the agent as ECI_INTAKE_URL.</summary>
    public string? IntakeUrl { get; set; }

    /// <summary>How pods reach the secrets broker, given as ECI_SECRETS_URL; unset, jobs that ask for secrets fail with the agent's message.</summary>
    public string? SecretsBrokerUrl { get; set; }

    /// <summary>How pods reach the dependency cache, given as ECI_CACHE_URL; unset, the agent skips caches.</summary>
    public string? CacheUrl { get; set; }

    /// <summary>How long an image pull error or an unschedulable pod may last before the job fails with Kubernetes' reason.</summary>
    public TimeSpan PendingGracePeriod { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// How long an unschedulable pod may wait once the cluster autoscaler said it is adding a node for it
    /// (a <c>TriggeredScaleUp</c> event): new nodes take minutes, and failing the job meanwhile wastes the node.
    /// </summary>
    public TimeSpan ScaleUpGracePeriod { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>PriorityClass of runner pods whose template names none (deploy/kubernetes makes <c>ephemeralci-runner</c>, below the control plane's).</summary>
    public string? PriorityClassName { get; set; }

    /// <summary>The runner agent inside the image: a <c>.dll</c> runs on the image's dotnet, anything else is executed (the native agent, <c>/opt/eci/agent/EphemeralCI.RunnerAgent</c>, needs no .NET in the image).</summary>
    public string AgentAssemblyPath { get; set; } = "/opt/eci/agent/EphemeralCI.RunnerAgent.dll";

    /// <summary>Removal by Kubernetes after completion, should the provisioner's own delete not happen.</summary>
    public int TtlSecondsAfterFinished { get; set; } = 30;

    /// <summary>Between SIGTERM and SIGKILL when a runner is deleted (cancel): short, a cancelled job has nothing to save.</summary>
    public int TerminationGracePeriodSeconds { get; set; } = 5;

    /// <summary>How long a kill waits for the runner's pods to be gone before giving up (and logging it).</summary>
    public TimeSpan DeleteTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Optional service account for runner pods (its token is never mounted); null = the namespace default.</summary>
    public string? ServiceAccountName { get; set; }
}
