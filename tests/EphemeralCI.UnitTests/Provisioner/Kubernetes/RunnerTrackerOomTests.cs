using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Backends.Kubernetes;
using k8s.Models;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner.Kubernetes;

public sealed class RunnerTrackerOomTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-11-25T12:00:00Z");

    [Fact]
    public void An_oom_killed_agent_is_a_limit_the_job_hit_not_a_kill_from_outside()
    {
        var tracker = new RunnerTracker(Guid.NewGuid(), T0);
        var pod = new V1Pod
        {
            Status = new V1PodStatus
            {
                Phase = "Failed",
                ContainerStatuses =
                [
                    new V1ContainerStatus
                    {
                        Name = RunnerPodSpecBuilder.ContainerName, Image = "x:1", ImageID = "sha256:1", Ready = false, RestartCount = 0,
                        State = new V1ContainerState { Terminated = new V1ContainerStateTerminated { ExitCode = 137, Reason = RunnerTracker.OomKilled } },
                    },
                ],
            },
        };

        tracker.Observe(PodObservation.Of(pod), T0);

        Assert.Equal(RunnerOutcome.LimitExceeded, tracker.Failure!.Outcome);
        Assert.Contains("out of memory", tracker.Failure.Reason);
    }
}
