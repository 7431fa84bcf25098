using EphemeralCI.Cli.JobFiles;
using Xunit;

namespace EphemeralCI.UnitTests.Cli;

public sealed class JobFileParserTests
{
    private const string Sha = "0123456789abcdef0123456789abcdef01234567";

    private static JobFileException Invalid(string yaml) => Assert.Throws<JobFileException>(() => JobFileParser.Parse(yaml, "job.yml"));

    [Fact]
    public void Reads_every_field()
    {
        var spec = JobFileParser.Parse($"""
            name: build and test
            repository: acme/widgets
            ref: refs/heads/main
            commitSha: {Sha}
            runnerTemplate: small
            timeoutSeconds: 300
            env:
              CI: true
              LEVEL: 3
            secrets: [NPM_TOKEN, DEPLOY_KEY]
            caches:
              - key: npm-abc
                restoreKeys: [npm-]
                paths: [node_modules, .npm]
            steps:
              - name: install
                run: npm ci
                env:
                  NODE_ENV: test
              - run: |
                  npm test
                  echo done
              - echo shorthand
            """, "job.yml").Spec;

        Assert.Equal("build and test", spec.Name);
        Assert.Equal("acme/widgets", spec.Repository);
        Assert.Equal("refs/heads/main", spec.Ref);
        Assert.Equal(Sha, spec.CommitSha);
        Assert.Equal("small", spec.RunnerTemplate);
        Assert.Equal(300, spec.TimeoutSeconds);
        Assert.Equal(new Dictionary<string, string> { ["CI"] = "true", ["LEVEL"] = "3" }, spec.Env);
        Assert.Equal(["NPM_TOKEN", "DEPLOY_KEY"], spec.Secrets);
        var cache = Assert.Single(spec.Caches!);
        Assert.Equal("npm-abc", cache.Key);
        Assert.Equal(["npm-"], cache.RestoreKeys);
        Assert.Equal(["node_modules", ".npm"], cache.Paths);
        Assert.Equal(3, spec.Steps!.Count);
        Assert.Equal("install", spec.Steps[0].Name);
        Assert.Equal("npm ci", spec.Steps[0].Run);
        Assert.Equal("test", spec.Steps[0].Env!["NODE_ENV"]);
        Assert.Equal("npm test\necho done\n", spec.Steps[1].Run);
        Assert.Null(spec.Steps[1].Name);
        Assert.Equal("echo shorthand", spec.Steps[2].Run);
    }

    [Fact]
    public void Short_names_commit_template_and_timeout_duration_are_accepted()
    {
        var spec = JobFileParser.Parse($"commit: {Sha}\ntemplate: default\ntimeout: 1h30m\nsteps: [echo hi]\n", "job.yml").Spec;
        Assert.Equal(Sha, spec.CommitSha);
        Assert.Equal("default", spec.RunnerTemplate);
        Assert.Equal(5400, spec.TimeoutSeconds);
    }

    [Theory]
    [InlineData("90s", 90)]
    [InlineData("10m", 600)]
    [InlineData("2h", 7200)]
    [InlineData("1h30m", 5400)]
    [InlineData("1m30s", 90)]
    [InlineData("45", 45)]
    public void Durations_are_read(string text, int seconds)
    {
        Assert.True(Durations.TryParseSeconds(text, out var parsed));
        Assert.Equal(seconds, parsed);
    }

    [Theory]
    [InlineData("")]
    [InlineData("ten minutes")]
    [InlineData("10x")]
    [InlineData("1.5h")]
    [InlineData("30m1h")]
    [InlineData("-5s")]
    [InlineData("99999999999h")]
    public void Bad_durations_are_refused(string text)
    {
        Assert.False(Durations.TryParseSeconds(text, out _));
    }

    [Fact]
    public void A_bad_timeout_names_its_line_and_column()
    {
        var ex = Invalid("steps: [echo hi]\ntimeout: soon\n");
        var error = Assert.Single(ex.Errors);
        Assert.Equal((2, 10), (error.Line, error.Column));
        Assert.Contains("duration like 90s", error.Message);
        Assert.StartsWith("job.yml:2:10:", error.ToString());
    }

    [Fact]
    public void TimeoutSeconds_must_be_a_number_and_not_both_timeouts()
    {
        Assert.Contains("whole number of seconds", Assert.Single(Invalid("steps: [echo hi]\ntimeoutSeconds: 10m\n").Errors).Message);
        var both = Assert.Single(Invalid("steps: [echo hi]\ntimeoutSeconds: 10\ntimeout: 10m\n").Errors);
        Assert.Equal(3, both.Line);
        Assert.Contains("same field", both.Message);
    }

    [Fact]
    public void Unknown_fields_are_reported_at_their_position_with_a_hint()
    {
        var ex = Invalid("""
            name: x
            step:
              - run: echo
            commit_sha: abc
            """);
        Assert.Equal(3, ex.Errors.Count); // step, commit_sha, and the missing steps
        var step = ex.Errors.Single(e => e.Message.Contains("`step`"));
        Assert.Equal((2, 1), (step.Line, step.Column));
        Assert.Contains("did you mean `steps`", step.Message);
        var sha = ex.Errors.Single(e => e.Message.Contains("commit_sha"));
        Assert.Equal(4, sha.Line);
        Assert.Contains("did you mean `commitSha`", sha.Message);
        Assert.Contains(ex.Errors, e => e.Message.Contains("missing field `steps`"));
    }

    [Fact]
    public void Unknown_step_and_cache_fields_are_reported()
    {
        var ex = Invalid("""
            steps:
              - name: a
                script: echo
            caches:
              - key: k
                path: [x]
            """);
        var script = ex.Errors.Single(e => e.Message.Contains("steps[0].script"));
        Assert.Equal((3, 5), (script.Line, script.Column));
        Assert.Contains(ex.Errors, e => e.Message.Contains("missing field `run` in steps[0]") && e.Line == 2);
        var path = ex.Errors.Single(e => e.Message.Contains("caches[0].path`"));
        Assert.Contains("did you mean `paths`", path.Message);
        Assert.Contains(ex.Errors, e => e.Message.Contains("missing field `paths` in caches[0]"));
    }

    [Fact]
    public void Wrong_types_are_reported_with_what_was_found()
    {
        var ex = Invalid("""
            name: [a, b]
            env: [A=1]
            secrets: NPM_TOKEN
            steps:
              - run: echo
                env:
                  EMPTY:
            """);
        Assert.Contains(ex.Errors, e => e.Line == 1 && e.Message.Contains("`name` must be a text value, not a list"));
        Assert.Contains(ex.Errors, e => e.Line == 2 && e.Message.Contains("`env` must be a mapping"));
        Assert.Contains(ex.Errors, e => e.Line == 3 && e.Message.Contains("`secrets` must be a list"));
        Assert.Contains(ex.Errors, e => e.Line == 7 && e.Message.Contains("steps[0].env.EMPTY has no value"));
    }

    [Fact]
    public void Yaml_syntax_errors_carry_line_and_column()
    {
        var ex = Invalid("name: x\nsteps:\n  - run: echo\n    name: [unclosed\n");
        var error = Assert.Single(ex.Errors);
        Assert.NotNull(error.Line);
        Assert.True(error.Line >= 4, $"line {error.Line}");
        Assert.StartsWith("YAML syntax:", error.Message);
    }

    [Fact]
    public void Duplicate_keys_empty_files_and_second_documents_are_refused()
    {
        Assert.Contains(Invalid("steps: [a]\nsteps: [b]\n").Errors, e => e.Line == 2);
        Assert.Contains("empty", Assert.Single(Invalid("").Errors).Message);
        Assert.Contains("second `---`", Assert.Single(Invalid("steps: [a]\n---\nsteps: [b]\n").Errors).Message);
        Assert.Contains("must be a mapping", Assert.Single(Invalid("- echo\n").Errors).Message);
    }

    [Fact]
    public void Server_field_errors_are_located_in_the_file()
    {
        var parsed = JobFileParser.Parse("""
            name: x
            steps:
              - run: echo
                env:
                  ECI_X: "1"
            """, "job.yml");
        Assert.Equal("job.yml:5:7: steps[0].env.ECI_X: reserved", parsed.Locate("steps[0].env.ECI_X", "reserved").ToString());
        // A field the file does not have falls back to the nearest enclosing one.
        Assert.Equal("job.yml:3:5: steps[0].name: too long", parsed.Locate("steps[0].name", "too long").ToString());
        Assert.Equal("job.yml:1:1: commitSha: is required", parsed.Locate("commitSha", "is required").ToString());
    }

    [Fact]
    public void Retry_on_a_lost_runner_is_read_and_a_bad_count_named()
    {
        var spec = JobFileParser.Parse($"commit: {Sha}\nretry:\n  infrastructure: 2\nsteps: [echo hi]\n", "job.yml").Spec;
        Assert.Equal(2, spec.Retry?.Infrastructure);
        var error = Assert.Single(Invalid($"commit: {Sha}\nretry:\n  infrastructure: twice\nsteps: [echo hi]\n").Errors);
        Assert.Contains("retry.infrastructure", error.Message);
        Assert.Equal(3, error.Line);
    }
}
