using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Consumers;
using EphemeralCI.Intake.Model;
using Xunit;

namespace EphemeralCI.UnitTests.Intake;

public sealed class JobTransitionTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static Job NewJob() => new()
    {
        Id = Guid.NewGuid(), Repository = "a/b", Ref = "main", CommitSha = new string('a', 40), RunnerTemplate = "default", Spec = "{}",
    };

    [Theory]
    [InlineData(JobStatus.Queued, JobStatus.Provisioning, true)]
    [InlineData(JobStatus.Queued, JobStatus.Running, true)]
    [InlineData(JobStatus.Queued, JobStatus.Cancelled, true)]
    [InlineData(JobStatus.Provisioning, JobStatus.Running, true)]
    [InlineData(JobStatus.Provisioning, JobStatus.Failed, true)]
    [InlineData(JobStatus.Running, JobStatus.Succeeded, true)]
    [InlineData(JobStatus.Running, JobStatus.TimedOut, true)]
    [InlineData(JobStatus.Running, JobStatus.Provisioning, false)]
    [InlineData(JobStatus.Running, JobStatus.Queued, false)]
    [InlineData(JobStatus.Running, JobStatus.Running, false)]
    [InlineData(JobStatus.Succeeded, JobStatus.Failed, false)]
    [InlineData(JobStatus.Cancelled, JobStatus.Succeeded, false)]
    [InlineData(JobStatus.TimedOut, JobStatus.Running, false)]
    [InlineData(JobStatus.Failed, JobStatus.Cancelled, false)]
    public void Jobs_only_move_forward_and_terminal_states_are_final(JobStatus from, JobStatus to, bool allowed) =>
        Assert.Equal(allowed, JobTransitions.CanMove(from, to));

    [Fact]
    public void Moving_sets_started_and_finished_times_once()
    {
        var job = NewJob();
        Assert.True(job.TryMoveTo(JobStatus.Running, T0));
        Assert.Equal(T0, job.StartedAt);
        Assert.Null(job.FinishedAt);

        Assert.True(job.TryMoveTo(JobStatus.Failed, T0.AddMinutes(1), "boom", 2));
        Assert.Equal((T0.AddMinutes(1), "boom", 2), (job.FinishedAt!.Value, job.StatusReason!, job.ExitCode!.Value));

        Assert.False(job.TryMoveTo(JobStatus.Succeeded, T0.AddMinutes(2), "late", 0));
        Assert.Equal((JobStatus.Failed, "boom", 2, T0.AddMinutes(1)), (job.Status, job.StatusReason, job.ExitCode!.Value, job.FinishedAt!.Value));
    }

    [Fact]
    public void Skipping_straight_to_a_terminal_state_sets_no_start_time()
    {
        var job = NewJob();
        Assert.True(job.TryMoveTo(JobStatus.Cancelled, T0));
        Assert.Null(job.StartedAt);
        Assert.Equal(T0, job.FinishedAt);
    }

    [Theory]
    [InlineData(RunnerOutcome.TimedOut, JobStatus.TimedOut)]
    [InlineData(RunnerOutcome.Cancelled, JobStatus.Cancelled)]
    [InlineData(RunnerOutcome.Exited, JobStatus.Failed)]
    [InlineData(RunnerOutcome.FailedToStart, JobStatus.Failed)]
    [InlineData(RunnerOutcome.Lost, JobStatus.Failed)]
    public void Runner_outcome_maps_to_a_terminal_state(RunnerOutcome outcome, JobStatus expected)
    {
        var (status, reason) = RunnerFinishedConsumer.Decide(new RunnerFinished(Guid.NewGuid(), "r", outcome, 9, "why", T0));
        Assert.Equal(expected, status);
        Assert.False(string.IsNullOrWhiteSpace(reason));
    }

    [Fact]
    public void A_runner_that_exits_without_reporting_fails_the_job_naming_its_exit_code()
    {
        var (_, reason) = RunnerFinishedConsumer.Decide(new RunnerFinished(Guid.NewGuid(), "r", RunnerOutcome.Exited, 137, null, T0));
        Assert.Equal("runner exited with code 137 before reporting a result", reason);
    }

    [Theory]
    [InlineData(JobStatus.TimedOut, "timed_out")]
    [InlineData(JobStatus.Queued, "queued")]
    public void Status_names_are_snake_case_both_ways(JobStatus status, string name)
    {
        Assert.Equal(name, JobStatusNames.ToName(status));
        Assert.True(JobStatusNames.TryParse(name, out var parsed));
        Assert.Equal(status, parsed);
        Assert.False(JobStatusNames.TryParse("TimedOut", out _));
    }

    private static Job RetryingJob(int retries) => new()
    {
        Id = Guid.NewGuid(), Repository = "a/b", Ref = "main", CommitSha = new string('a', 40), RunnerTemplate = "default",
        Spec = "{\"retry\":{\"infrastructure\":" + retries + "}}",
    };

    [Fact]
    public void A_lost_runner_starts_the_next_attempt_only_once_it_is_destroyed()
    {
        var job = RetryingJob(1);
        Assert.True(job.TryMoveTo(JobStatus.Running, T0));
        job.BindAgent("agent-1");
        Assert.True(job.RetryAfterLoss(attempt: 1));
        Assert.False(job.NextAttemptDue);
        job.RunnerDestroyed(attempt: 1);
        Assert.True(job.NextAttemptDue);

        job.StartNextAttempt(logLength: 42);
        Assert.Equal((2, JobStatus.Queued, 42L), (job.Attempt, job.Status, job.LogBase));
        Assert.False(job.NextAttemptDue);
        // The new runner's agent binds itself; the old one's key no longer counts.
        Assert.Equal(AgentBinding.Bound, job.BindAgent("agent-2"));
        Assert.Equal(2, job.RunJobMessage(T0).Attempt);

        // No attempt left: the next loss decides the job.
        Assert.False(job.RetryAfterLoss(attempt: 2));
    }

    [Fact]
    public void No_retry_for_a_job_without_retries_an_old_attempt_or_a_finished_job()
    {
        Assert.False(NewJob().RetryAfterLoss(attempt: 1));
        var job = RetryingJob(3);
        Assert.False(job.RetryAfterLoss(attempt: 2));
        Assert.True(job.TryMoveTo(JobStatus.Cancelled, T0));
        Assert.False(job.RetryAfterLoss(attempt: 1));
        Assert.Throws<InvalidOperationException>(() => job.StartNextAttempt(0));
    }
}
