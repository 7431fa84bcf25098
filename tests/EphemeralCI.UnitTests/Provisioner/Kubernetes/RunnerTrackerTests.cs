using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Consumers;
using EphemeralCI.Provisioner.Backends.Kubernetes;
using k8s.Models;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner.Kubernetes;

/// <summary>Pod observation and the pending rules, with time passed in (no clock, no waiting).</summary>
public sealed class RunnerTrackerTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 26, 10, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Grace = TimeSpan.FromMinutes(2);

    private static V1Pod Pod(string? phase = "Pending", V1ContainerState? state = null, string? imageId = null, V1PodCondition? scheduled = null, string? reason = null) => new()
    {
        Metadata = new V1ObjectMeta { Name = "eci-x-abcde" },
        Spec = new V1PodSpec { Containers = [new V1Container { Name = "agent", Image = "registry.example/runner:1" }] },
        Status = new V1PodStatus
        {
            Phase = phase,
            Reason = reason,
            Conditions = scheduled is null ? [] : [scheduled],
            ContainerStatuses = [new V1ContainerStatus { Name = "agent", Image = "registry.example/runner:1", ImageID = imageId ?? "", State = state ?? new V1ContainerState() }],
        },
    };

    private static V1PodCondition Scheduled(string status = "True", string? reason = null, string? message = null) =>
        new() { Type = "PodScheduled", Status = status, Reason = reason, Message = message };

    private static V1ContainerState Waiting(string reason, string? message = null) => new() { Waiting = new V1ContainerStateWaiting { Reason = reason, Message = message } };

    [Fact]
    public async Task Stages_are_reported_once_in_order_and_the_exit_code_completes_the_runner()
    {
        var tracker = new RunnerTracker(Guid.NewGuid(), T0);
        Assert.Empty(tracker.Observe(PodObservation.Of(Pod()), T0));
        Assert.Equal(["scheduled"], tracker.Observe(PodObservation.Of(Pod(scheduled: Scheduled())), T0).Select(p => p.Stage));
        Assert.Empty(tracker.Observe(PodObservation.Of(Pod(scheduled: Scheduled())), T0));
        Assert.Equal(["image_pulled"], tracker.Observe(PodObservation.Of(Pod(scheduled: Scheduled(), imageId: "sha256:1", state: Waiting("ContainerCreating"))), T0).Select(p => p.Stage));
        Assert.Equal(["running"], tracker.Observe(PodObservation.Of(Pod("Running", new V1ContainerState { Running = new V1ContainerStateRunning() }, "sha256:1", Scheduled())), T0).Select(p => p.Stage));
        Assert.False(tracker.Exited.IsCompleted);

        var exit = tracker.Observe(PodObservation.Of(Pod("Failed", new V1ContainerState { Terminated = new V1ContainerStateTerminated { ExitCode = 7, Reason = "Error" } }, "sha256:1", Scheduled())), T0);
        Assert.Equal(("exited", "exit code 7 (Error)"), Assert.Single(exit));
        Assert.Equal(7, await tracker.Exited);
        Assert.Null(tracker.Failure);
    }

    [Fact]
    public async Task A_pod_first_seen_finished_still_reports_every_stage()
    {
        var tracker = new RunnerTracker(Guid.NewGuid(), T0);
        var progress = tracker.Observe(PodObservation.Of(Pod("Succeeded", new V1ContainerState { Terminated = new V1ContainerStateTerminated { ExitCode = 0 } })), T0);
        Assert.Equal(["scheduled", "image_pulled", "running", "exited"], progress.Select(p => p.Stage));
        Assert.Equal(0, await tracker.Exited);
    }

    [Fact]
    public void An_image_pull_error_fails_only_after_the_grace_period_with_kubernetes_reason()
    {
        var tracker = new RunnerTracker(Guid.NewGuid(), T0);
        var stuck = PodObservation.Of(Pod(scheduled: Scheduled(), state: Waiting("ImagePullBackOff", "Back-off pulling image")));
        var first = tracker.Observe(stuck, T0.AddSeconds(5));
        Assert.Contains(("waiting", "image 'registry.example/runner:1' could not be pulled: ImagePullBackOff (Back-off pulling image)"), first);
        Assert.Empty(tracker.Observe(stuck, T0.AddSeconds(30))); // same reason: reported once

        Assert.Null(tracker.CheckGrace(T0.AddSeconds(5) + Grace - TimeSpan.FromMilliseconds(1), Grace));
        var failure = tracker.CheckGrace(T0.AddSeconds(5) + Grace, Grace);

        Assert.NotNull(failure);
        Assert.Equal(RunnerOutcome.FailedToStart, failure.Outcome);
        Assert.StartsWith("image 'registry.example/runner:1' could not be pulled: ImagePullBackOff (Back-off pulling image)", failure.Reason);
        Assert.True(tracker.Exited.IsCompleted);
        Assert.Same(failure, tracker.Failure);
    }

    [Fact]
    public void A_problem_that_clears_restarts_the_grace_period()
    {
        var tracker = new RunnerTracker(Guid.NewGuid(), T0);
        tracker.Observe(PodObservation.Of(Pod(scheduled: Scheduled(), state: Waiting("ErrImagePull"))), T0);
        tracker.Observe(PodObservation.Of(Pod(scheduled: Scheduled(), imageId: "sha256:1", state: Waiting("ContainerCreating"))), T0.AddSeconds(60));
        Assert.Null(tracker.CheckGrace(T0 + Grace + Grace, Grace));
        Assert.False(tracker.Exited.IsCompleted);
    }

    [Fact]
    public void An_unschedulable_pod_fails_with_the_scheduler_message()
    {
        var tracker = new RunnerTracker(Guid.NewGuid(), T0);
        tracker.Observe(PodObservation.Of(Pod(scheduled: Scheduled("False", "Unschedulable", "0/3 nodes are available: 3 Insufficient cpu."))), T0);
        var failure = tracker.CheckGrace(T0 + Grace, Grace);
        Assert.NotNull(failure);
        Assert.StartsWith("the runner pod could not be scheduled: Unschedulable (0/3 nodes are available: 3 Insufficient cpu.)", failure.Reason);
    }

    [Fact]
    public void A_job_that_never_gets_a_pod_fails_after_the_grace_period()
    {
        var tracker = new RunnerTracker(Guid.NewGuid(), T0);
        Assert.Null(tracker.CheckGrace(T0 + Grace - TimeSpan.FromSeconds(1), Grace));
        Assert.Contains("created no pod", tracker.CheckGrace(T0 + Grace, Grace)!.Reason);
    }

    [Fact]
    public void A_healthy_pending_pod_never_fails_on_grace()
    {
        var tracker = new RunnerTracker(Guid.NewGuid(), T0);
        tracker.Observe(PodObservation.Of(Pod(scheduled: Scheduled(), state: Waiting("ContainerCreating"))), T0);
        Assert.Null(tracker.CheckGrace(T0.AddHours(1), Grace));
    }

    [Theory]
    [InlineData("DeadlineExceeded", RunnerOutcome.TimedOut)]
    [InlineData("Evicted", RunnerOutcome.Lost)]
    public void Kubernetes_ending_the_pod_itself_is_reported_as_such(string reason, RunnerOutcome outcome)
    {
        var tracker = new RunnerTracker(Guid.NewGuid(), T0);
        tracker.Observe(PodObservation.Of(Pod("Failed", reason: reason, state: new V1ContainerState { Terminated = new V1ContainerStateTerminated { ExitCode = 137 } })), T0);
        Assert.Equal(outcome, tracker.Failure!.Outcome);
        Assert.Contains(reason, tracker.Failure.Reason);
    }

    [Fact]
    public void A_pod_deleted_under_a_running_job_loses_the_runner()
    {
        var tracker = new RunnerTracker(Guid.NewGuid(), T0);
        tracker.Observe(PodObservation.Of(Pod("Running", new V1ContainerState { Running = new V1ContainerStateRunning() })), T0);
        tracker.PodDeleted("eci-x-abcde");
        Assert.Equal(RunnerOutcome.Lost, tracker.Failure!.Outcome);
        Assert.Contains("eci-x-abcde", tracker.Failure.Reason);
    }

    [Theory]
    [InlineData("scheduled", "runner.scheduled")]
    [InlineData("image_pulled", "runner.image_pulled")]
    [InlineData("finished", "runner.progress")]
    [InlineData("Bad Stage!", "runner.progress")]
    public void Progress_becomes_a_timeline_event_type_that_cannot_clash(string stage, string expected) =>
        Assert.Equal(expected, RunnerProgressConsumer.EventType(stage));

    [Fact]
    public void A_scale_up_lengthens_the_wait_of_an_unschedulable_pod_and_of_nothing_else()
    {
        var grace = TimeSpan.FromMinutes(2);
        var scaleUp = TimeSpan.FromMinutes(10);
        var waiting = new RunnerTracker(Guid.NewGuid(), T0);
        waiting.Observe(PodObservation.Of(Pod(scheduled: Scheduled("False", "Unschedulable", "0/3 nodes are available: 3 Insufficient cpu."))), T0);
        Assert.True(waiting.ScaleUpTriggered());
        Assert.False(waiting.ScaleUpTriggered()); // reported once
        Assert.Null(waiting.CheckGrace(T0.AddMinutes(9), grace, scaleUp));
        Assert.NotNull(waiting.CheckGrace(T0.AddMinutes(10), grace, scaleUp));

        // Without the event the ordinary grace holds.
        var alone = new RunnerTracker(Guid.NewGuid(), T0);
        alone.Observe(PodObservation.Of(Pod(scheduled: Scheduled("False", "Unschedulable", "0/3 nodes are available."))), T0);
        Assert.NotNull(alone.CheckGrace(T0.AddMinutes(2), grace, scaleUp));
    }
}
