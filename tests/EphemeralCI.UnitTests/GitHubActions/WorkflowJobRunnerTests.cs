using EphemeralCI.GitHubActions;
using EphemeralCI.GitHubActions.Model;
using EphemeralCI.GitHubActions.Services;
using Xunit;

namespace EphemeralCI.UnitTests.GitHubActions;

public sealed class WorkflowJobRunnerTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 4, 12, 0, 0, TimeSpan.Zero);

    private static WorkflowJobEvent Event(string status, string? runner = null) =>
        new(7, 8, 9, "acme/widgets", "refs/heads/main", "abc", ["self-hosted", "linux"], status, runner);

    [Fact]
    public void A_queued_job_is_claimed_once_with_a_fixed_runner_name_and_launched_once()
    {
        var row = WorkflowJobRunner.Seen(Event("queued"), "linux", Now);
        Assert.True(row.TryClaimLaunch(Now));
        Assert.Equal("eci-7", row.RunnerName);
        Assert.False(row.TryClaimLaunch(Now));
        var id = Guid.NewGuid();
        Assert.True(row.TryLaunched(55, id, Now));
        Assert.False(row.TryLaunched(56, Guid.NewGuid(), Now));
        Assert.Equal((RunnerState.Launched, 55L, id), (row.State, row.RunnerId, row.EciJobId));
    }

    [Fact]
    public void GitHubs_status_only_moves_forward_and_a_job_no_longer_queued_is_never_claimed()
    {
        var row = WorkflowJobRunner.Seen(Event("completed"), "linux", Now);
        Assert.False(row.TryObserve("queued", null, Now));
        Assert.False(row.TryClaimLaunch(Now));
        Assert.True(row.CompletedWithoutOurRunner);

        var taken = WorkflowJobRunner.Seen(Event("queued"), "linux", Now);
        Assert.True(taken.TryObserve("in_progress", "someone-elses-runner", Now));
        Assert.False(taken.TryObserve("queued", null, Now));
        Assert.False(taken.TryClaimLaunch(Now));
    }

    [Fact]
    public void Completed_by_our_own_runner_is_not_without_it()
    {
        var row = WorkflowJobRunner.Seen(Event("queued"), "linux", Now);
        row.TryClaimLaunch(Now);
        row.TryLaunched(1, Guid.NewGuid(), Now);
        Assert.True(row.TryObserve("in_progress", "eci-7", Now));
        Assert.True(row.TryObserve("completed", null, Now));
        Assert.False(row.CompletedWithoutOurRunner);
    }

    [Fact]
    public void Labels_no_template_covers_are_recorded_as_done_and_never_launched()
    {
        var row = WorkflowJobRunner.Seen(Event("queued"), template: null, Now);
        Assert.Equal(RunnerState.Done, row.State);
        Assert.False(row.TryClaimLaunch(Now));
    }

    [Theory]
    [InlineData(new[] { "self-hosted", "linux" }, true)]
    [InlineData(new[] { "LINUX" }, true)]
    [InlineData(new[] { "self-hosted", "gpu" }, false)]
    [InlineData(new string[0], false)]
    public void A_template_covers_a_job_when_it_has_every_runs_on_label(string[] runsOn, bool covered) =>
        Assert.Equal(covered, new GitHubRunnerTemplate { RunnerTemplate = "default", Labels = ["self-hosted", "linux", "x64"] }.Covers(runsOn));

    [Fact]
    public void The_runner_job_carries_the_JIT_config_in_its_step_environment_only_and_names_it_for_masking()
    {
        var spec = RunnerLauncher.RunnerJobSpec("runner for workflow job 7", "acme/widgets", "abc", new GitHubRunnerTemplate { RunnerTemplate = "gha", Labels = ["linux"] }, "JIT-VALUE");
        var step = Assert.Single(spec.Steps!);
        Assert.Equal("JIT-VALUE", step.Env!["GITHUB_JIT_CONFIG"]);
        Assert.Equal(["GITHUB_JIT_CONFIG"], spec.MaskedEnv);
        Assert.DoesNotContain("JIT-VALUE", step.Run + step.Name + spec.Name + string.Join(",", spec.Env?.Values ?? []));
        Assert.Equal(("acme/widgets", RunnerLauncher.RunnerRef, "abc", "gha", false), (spec.Repository, spec.Ref, spec.CommitSha, spec.RunnerTemplate, spec.Checkout!.Enabled));
    }

    [Fact]
    public void A_long_branch_name_or_a_long_refusal_cannot_make_the_job_or_the_row_unsaveable()
    {
        // A hostile branch name (GitHub allows 255 characters) ends up in the job's name: cut to the intake's limit, not refused.
        var spec = RunnerLauncher.RunnerJobSpec("runner (refs/heads/" + new string('b', 255) + ")", "acme/widgets", "abc",
            new GitHubRunnerTemplate { RunnerTemplate = "gha", Labels = ["linux"] }, "JIT");
        Assert.Equal(200, spec.Name!.Length);
        Assert.Null(spec.Secrets);
        // An intake refusal quoting a long problem body: the abandon still fits its column (500), so the row is not stuck in Launching.
        var row = WorkflowJobRunner.Seen(Event("queued"), "linux", Now);
        Assert.True(row.TryClaimLaunch(Now));
        Assert.True(row.TryAbandon("intake answered 422: " + new string('x', 5000), 11, Now));
        Assert.Equal(500, row.Reason!.Length);
    }
}
