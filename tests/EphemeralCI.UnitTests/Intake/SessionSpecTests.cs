using EphemeralCI.Cli.Commands;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Model;
using EphemeralCI.Intake.Validation;
using Xunit;

namespace EphemeralCI.UnitTests.Intake;

public sealed class SessionSpecTests
{
    private static readonly RunnerTemplateDefinition Template = new() { DefaultTimeoutSeconds = 60, MaxTimeoutSeconds = 120 };

    private static JobSpec Session(int? idle = null) => new()
    {
        Repository = "acme/widgets", Ref = "refs/heads/main", CommitSha = new string('a', 40), RunnerTemplate = "default",
        Session = new SessionSpec { IdleTimeoutSeconds = idle },
    };

    [Fact]
    public void A_session_needs_no_steps_and_may_have_none()
    {
        Assert.Empty(JobSpecValidator.Validate(Session(), Template));
        Assert.Contains("steps", JobSpecValidator.Validate(Session() with { Steps = [new StepSpec { Run = "true" }] }, Template).Keys);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(3601)]
    public void An_idle_timeout_out_of_range_names_its_field(int idle) =>
        Assert.Contains("session.idleTimeoutSeconds", JobSpecValidator.Validate(Session(idle), Template).Keys);

    [Fact]
    public void A_session_is_never_retried_on_a_new_runner() =>
        Assert.Contains("retry.infrastructure", JobSpecValidator.Validate(Session() with { Retry = new RetrySpec { Infrastructure = 1 } }, Template).Keys);

    [Fact]
    public void A_command_is_checked_like_a_step_with_its_own_field_names()
    {
        Assert.Empty(JobSpecValidator.ValidateCommand(new StepSpec { Run = "make" }));
        Assert.Equal(["run"], JobSpecValidator.ValidateCommand(new StepSpec { Run = " " }).Keys);
        Assert.Contains("env.1BAD", JobSpecValidator.ValidateCommand(new StepSpec { Run = "x", Env = new Dictionary<string, string> { ["1BAD"] = "" } }).Keys);
    }

    [Fact]
    public void Commands_append_only_to_an_unfinished_session_at_the_count_the_sender_saw()
    {
        var job = new Job
        {
            Repository = "acme/widgets", Ref = "refs/heads/main", CommitSha = new string('a', 40), RunnerTemplate = "default",
            Spec = System.Text.Json.JsonSerializer.Serialize(Session(60), System.Text.Json.JsonSerializerOptions.Web),
        };
        Assert.True(job.AppendSessionCommand(new StepSpec { Run = "one" }, expectedCount: 0));
        Assert.False(job.AppendSessionCommand(new StepSpec { Run = "raced" }, expectedCount: 0));
        Assert.True(job.AppendSessionCommand(new StepSpec { Run = "two" }, expectedCount: 1));
        Assert.Equal(["one", "two"], job.ParsedSpec().Steps!.Select(s => s.Run));
        job.TryMoveTo(JobStatus.Cancelled, DateTimeOffset.UtcNow);
        Assert.False(job.AppendSessionCommand(new StepSpec { Run = "late" }, expectedCount: 2));
    }

    [Theory]
    [InlineData("[\"linux\", \"eci:big\"]", "big")]
    [InlineData("linux, eci:small", "small")]
    [InlineData("linux", null)]
    [InlineData("eci:", null)]
    public void The_template_comes_from_an_eci_runner_tag(string tags, string? template) =>
        Assert.Equal(template, GitLabPrepareCommand.TemplateFromTags(tags));
}
