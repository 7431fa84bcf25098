using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Validation;
using Xunit;

namespace EphemeralCI.UnitTests.Intake;

public sealed class JobSpecValidatorTests
{
    private static readonly RunnerTemplateDefinition Template = new() { DefaultTimeoutSeconds = 60, MaxTimeoutSeconds = 120 };

    private static JobSpec Valid() => new()
    {
        Name = "build",
        Repository = "acme/widgets",
        Ref = "refs/heads/main",
        CommitSha = new string('a', 40),
        RunnerTemplate = "default",
        Steps = [new StepSpec { Name = "one", Run = "echo one", Env = new Dictionary<string, string> { ["A"] = "1" } }],
        Env = new Dictionary<string, string> { ["CI"] = "true", ["_X9"] = "" },
        TimeoutSeconds = 120,
        Secrets = ["NPM_TOKEN", "deploy.key"],
        Caches = [new CacheSpec { Key = "npm-1", RestoreKeys = ["npm-"], Paths = ["node_modules", "~/.npm"] }],
    };

    private static Dictionary<string, string[]> Errors(JobSpec spec, RunnerTemplateDefinition? template = null) =>
        JobSpecValidator.Validate(spec, template ?? Template);

    [Fact]
    public void A_complete_valid_spec_has_no_errors() => Assert.Empty(Errors(Valid()));

    [Fact]
    public void Only_the_required_fields_are_enough()
    {
        var spec = new JobSpec
        {
            Repository = "a/b", Ref = "main", CommitSha = new string('F', 64), RunnerTemplate = "default",
            Steps = [new StepSpec { Run = "true" }],
        };
        Assert.Empty(Errors(spec));
    }

    [Fact]
    public void An_empty_spec_reports_every_required_field_at_once()
    {
        var errors = Errors(new JobSpec());
        Assert.Equal(["commitSha", "ref", "repository", "runnerTemplate", "steps"], errors.Keys.Order().ToArray());
    }

    [Theory]
    [InlineData("widgets")]
    [InlineData("acme/")]
    [InlineData("/widgets")]
    [InlineData("acme/wid gets")]
    [InlineData("acme/../etc")]
    [InlineData("-acme/widgets")]
    public void Repository_must_look_like_owner_slash_name(string repository) =>
        Assert.Contains("repository", Errors(Valid() with { Repository = repository }).Keys);

    [Theory]
    [InlineData("acme/widgets")]
    [InlineData("group/subgroup/project")]
    [InlineData("my.org/my_repo-2")]
    public void Repository_accepts_owner_and_nested_groups(string repository) =>
        Assert.DoesNotContain("repository", Errors(Valid() with { Repository = repository }).Keys);

    [Theory]
    [InlineData("refs/heads/a b")]
    [InlineData("refs/heads/a..b")]
    [InlineData("-main")]
    [InlineData("main~1")]
    [InlineData("refs/heads/x.lock")]
    [InlineData("refs/heads/")]
    public void Ref_must_be_a_plausible_git_ref(string gitRef) =>
        Assert.Contains("ref", Errors(Valid() with { Ref = gitRef }).Keys);

    [Fact]
    public void Ref_has_a_length_limit() =>
        Assert.Contains("ref", Errors(Valid() with { Ref = new string('r', JobSpecValidator.MaxRefLength + 1) }).Keys);

    [Theory]
    [InlineData("abc")]
    [InlineData("0123456789abcdef0123456789abcdef0123456g")]
    [InlineData("0123456789abcdef0123456789abcdef012345670")] // 41
    public void CommitSha_must_be_40_or_64_hex(string sha) =>
        Assert.Contains("commitSha", Errors(Valid() with { CommitSha = sha }).Keys);

    [Theory]
    [InlineData("Default")]
    [InlineData("has space")]
    [InlineData("-leading")]
    public void RunnerTemplate_must_be_a_template_name(string name) =>
        Assert.Contains("runnerTemplate", Errors(Valid() with { RunnerTemplate = name }).Keys);

    [Fact]
    public void Steps_are_required_and_limited_in_number()
    {
        Assert.Contains("steps", Errors(Valid() with { Steps = [] }).Keys);
        var tooMany = Enumerable.Range(0, JobSpecValidator.MaxSteps + 1).Select(_ => new StepSpec { Run = "true" }).ToList();
        Assert.Contains("steps", Errors(Valid() with { Steps = tooMany }).Keys);
    }

    [Fact]
    public void Each_bad_step_field_is_named_by_its_path()
    {
        var spec = Valid() with
        {
            Steps =
            [
                new StepSpec { Run = "ok" },
                new StepSpec { Name = "no run" },
                null!,
                new StepSpec { Run = new string('x', JobSpecValidator.MaxRunLength + 1), Name = new string('n', 201) },
                new StepSpec { Run = "ok", Env = new Dictionary<string, string> { ["BAD-NAME"] = "v" } },
            ],
        };
        var errors = Errors(spec);
        Assert.Equal(["steps[1].run", "steps[2]", "steps[3].name", "steps[3].run", "steps[4].env.BAD-NAME"], errors.Keys.Order().ToArray());
    }

    [Theory]
    [InlineData("1ABC")]
    [InlineData("A-B")]
    [InlineData("A B")]
    [InlineData("")]
    [InlineData("ECI_JOB_ID")]
    public void Env_names_must_be_shell_identifiers_and_not_reserved(string name) =>
        Assert.Contains($"env.{name}", Errors(Valid() with { Env = new Dictionary<string, string> { [name] = "x" } }).Keys);

    [Fact]
    public void Env_values_and_counts_are_limited()
    {
        Assert.Contains("env.BIG", Errors(Valid() with { Env = new Dictionary<string, string> { ["BIG"] = new string('v', JobSpecValidator.MaxEnvValueLength + 1) } }).Keys);
        Assert.Contains("env.NUL", Errors(Valid() with { Env = new Dictionary<string, string> { ["NUL"] = "a\0b" } }).Keys);
        var many = Enumerable.Range(0, JobSpecValidator.MaxEnvEntries + 1).ToDictionary(i => $"V{i}", _ => "");
        Assert.Contains("env", Errors(Valid() with { Env = many }).Keys);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(121)]
    public void Timeout_must_be_positive_and_within_the_template_maximum(int timeout) =>
        Assert.Contains("timeoutSeconds", Errors(Valid() with { TimeoutSeconds = timeout }).Keys);

    [Fact]
    public void Without_a_known_template_the_timeout_is_only_checked_against_the_absolute_bound()
    {
        var spec = Valid() with { TimeoutSeconds = 121 };
        Assert.Empty(JobSpecValidator.Validate(spec, template: null));
        Assert.Contains("timeoutSeconds", JobSpecValidator.Validate(spec with { TimeoutSeconds = JobSpecValidator.AbsoluteMaxTimeoutSeconds + 1 }, null).Keys);
    }

    [Fact]
    public void Secrets_must_be_names_listed_once()
    {
        var errors = Errors(Valid() with { Secrets = ["OK", "", "has space", "OK"] });
        Assert.Equal(["secrets[1]", "secrets[2]", "secrets[3]"], errors.Keys.Order().ToArray());
        Assert.Contains("secrets", Errors(Valid() with { Secrets = Enumerable.Range(0, JobSpecValidator.MaxSecrets + 1).Select(i => $"S{i}").ToList() }).Keys);
    }

    [Fact]
    public void Caches_need_a_key_and_safe_paths()
    {
        var errors = Errors(Valid() with
        {
            Caches =
            [
                new CacheSpec { Paths = ["a"] },
                new CacheSpec { Key = "k", Paths = [] },
                new CacheSpec { Key = "k", RestoreKeys = [""], Paths = ["../outside", "ok", ""] },
            ],
        });
        Assert.Equal(["caches[0].key", "caches[1].paths", "caches[2].paths[0]", "caches[2].paths[2]", "caches[2].restoreKeys[0]"],
            errors.Keys.Order().ToArray());
    }

    [Fact]
    public void Name_is_optional_but_limited()
    {
        Assert.Empty(Errors(Valid() with { Name = null }));
        Assert.Contains("name", Errors(Valid() with { Name = new string('n', JobSpecValidator.MaxNameLength + 1) }).Keys);
        Assert.Contains("name", Errors(Valid() with { Name = "line\nbreak" }).Keys);
    }

    [Fact]
    public void Several_bad_fields_are_all_reported_together()
    {
        var errors = Errors(Valid() with { Repository = "x", CommitSha = "y", TimeoutSeconds = 0, Steps = [new StepSpec()] });
        Assert.Equal(["commitSha", "repository", "steps[0].run", "timeoutSeconds"], errors.Keys.Order().ToArray());
    }
}
