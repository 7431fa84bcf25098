using k8s.Models;

namespace EphemeralCI.Provisioner.Backends.Kubernetes;

/// <summary>The stages a runner pod goes through, in order; each is reported once as RunnerProgress.</summary>
public enum PodStage
{
    Created,
    Scheduled,
    ImagePulled,
    Running,
    Exited,
}

/// <summary>Why a pod is stuck before its agent runs, in Kubernetes' own words.</summary>
public sealed record PendingProblem(string Reason, string Description);

/// <summary>What one look at a runner pod says. Level-based: computed from the whole object, so a missed watch event loses nothing.</summary>
public sealed record PodObservation(PodStage Stage, PendingProblem? Problem, int? ExitCode, string? TerminationReason)
{
    /// <summary>Waiting reasons that mean the image will not arrive without someone changing something.</summary>
    public static readonly IReadOnlySet<string> ImageProblems = new HashSet<string>
    {
        "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable", "SignatureValidationFailed",
    };

    /// <summary>Waiting reasons that mean the container cannot be created as specified.</summary>
    public static readonly IReadOnlySet<string> ContainerProblems = new HashSet<string>
    {
        "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
    };

    public bool Finished => Stage == PodStage.Exited;

    public static string StageName(PodStage stage) => stage switch
    {
        PodStage.Created => "pod_created",
        PodStage.Scheduled => "scheduled",
        PodStage.ImagePulled => "image_pulled",
        PodStage.Running => "running",
        PodStage.Exited => "exited",
        _ => stage.ToString().ToLowerInvariant(),
    };

    public static PodObservation Of(V1Pod pod)
    {
        var status = pod.Status;
        var agent = status?.ContainerStatuses?.FirstOrDefault(c => c.Name == RunnerPodSpecBuilder.ContainerName)
            ?? status?.ContainerStatuses?.FirstOrDefault();
        var scheduled = status?.Conditions?.FirstOrDefault(c => c.Type == "PodScheduled");

        var terminated = agent?.State?.Terminated;
        if (terminated is not null || status?.Phase is "Succeeded" or "Failed")
        {
            var exitCode = terminated?.ExitCode ?? (status?.Phase == "Succeeded" ? 0 : null);
            return new PodObservation(PodStage.Exited, null, exitCode, status?.Reason ?? terminated?.Reason);
        }
        if (agent?.State?.Running is not null || status?.Phase == "Running") return new PodObservation(PodStage.Running, null, null, null);

        var waiting = agent?.State?.Waiting;
        if (waiting?.Reason is { } reason && ImageProblems.Contains(reason))
        {
            var image = agent?.Image ?? pod.Spec?.Containers?.FirstOrDefault()?.Image ?? "?";
            return new PodObservation(PodStage.Scheduled,
                new PendingProblem(reason, $"image '{image}' could not be pulled: {reason}" + Detail(waiting.Message)), null, null);
        }
        if (waiting?.Reason is { } configReason && ContainerProblems.Contains(configReason))
        {
            return new PodObservation(PodStage.Scheduled,
                new PendingProblem(configReason, $"the runner container could not be created: {configReason}" + Detail(waiting.Message)), null, null);
        }
        // The kubelet fills imageID once the image is on the node.
        if (!string.IsNullOrEmpty(agent?.ImageID)) return new PodObservation(PodStage.ImagePulled, null, null, null);

        if (scheduled?.Status == "True") return new PodObservation(PodStage.Scheduled, null, null, null);
        if (scheduled?.Status == "False" && scheduled.Reason is { } unschedulable)
        {
            return new PodObservation(PodStage.Created,
                new PendingProblem(unschedulable, $"the runner pod could not be scheduled: {unschedulable}" + Detail(scheduled.Message)), null, null);
        }
        return new PodObservation(PodStage.Created, null, null, null);
    }

    private static string Detail(string? message) => string.IsNullOrWhiteSpace(message) ? "" : $" ({message.Trim()})";
}
