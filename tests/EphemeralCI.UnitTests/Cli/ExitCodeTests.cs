using EphemeralCI.Cli;
using EphemeralCI.Cli.Api;
using EphemeralCI.Cli.Commands;
using EphemeralCI.Cli.Configuration;
using Xunit;

namespace EphemeralCI.UnitTests.Cli;

public sealed class ExitCodeTests
{
    [Theory]
    [InlineData("succeeded", null, 0)]
    [InlineData("succeeded", 0, 0)]
    [InlineData("failed", 3, 3)]
    [InlineData("failed", 255, 255)]
    [InlineData("failed", 0, 1)]      // failed must fail the script even when the code says otherwise
    [InlineData("failed", null, 1)]
    [InlineData("failed", 256, 1)]
    [InlineData("failed", -1, 1)]
    [InlineData("timed_out", null, 124)]
    [InlineData("timed_out", 137, 124)]
    [InlineData("cancelled", null, 130)]
    [InlineData("running", null, 1)]
    [InlineData("something_new", 0, 1)]
    public void Job_outcome_becomes_the_exit_code(string status, int? jobExitCode, int expected) =>
        Assert.Equal(expected, JobExitCodes.For(status, jobExitCode));

    [Theory]
    [InlineData(401, ExitCodes.Auth)]
    [InlineData(403, ExitCodes.Auth)]
    [InlineData(400, ExitCodes.Usage)]
    [InlineData(422, ExitCodes.Usage)]
    [InlineData(409, ExitCodes.Error)]
    [InlineData(500, ExitCodes.Error)]
    public void Api_errors_have_their_own_exit_codes(int status, int expected)
    {
        var problem = Problem.Parse(status, """{"title":"t","detail":"d","errors":{"steps":["is required"]}}""");
        Assert.Equal(expected, EciCommand<OutputSettings>.Describe(new EciApiException(problem, "GET", "/api/v1/jobs")).ExitCode);
    }

    [Fact]
    public void A_404_without_problem_details_says_the_server_may_not_be_an_intake()
    {
        var (message, _, code) = EciCommand<OutputSettings>.Describe(new EciApiException(Problem.Parse(404, "<html>nope</html>"), "GET", "/api/v1/jobs"));
        Assert.Equal(ExitCodes.Unreachable, code);
        Assert.Contains("EphemeralCI intake", message);
    }

    [Fact]
    public void Field_errors_are_listed_one_per_line()
    {
        var problem = Problem.Parse(400, """{"title":"The job spec is not valid","errors":{"steps":["is required"],"ref":["is required","bad"]}}""");
        Assert.Equal(["steps: is required", "ref: is required", "ref: bad"], EciCommand<OutputSettings>.FieldErrors(problem));
    }

    [Fact]
    public void Idempotency_keys_share_the_content_part_and_differ_per_invocation()
    {
        var a = RunCommand.IdempotencyKey("steps: [echo]");
        var b = RunCommand.IdempotencyKey("steps: [echo]");
        var c = RunCommand.IdempotencyKey("steps: [echo 2]");
        Assert.NotEqual(a, b);
        Assert.Equal(a[..^17], b[..^17]);
        Assert.NotEqual(a[..^17], c[..^17]);
        Assert.True(a.Length <= 255 && a.All(ch => ch is >= '!' and <= '~'));
    }

    [Theory]
    [InlineData("eci_abcdefgh0123456789012345678901234567", "eci_abcdefgh...(40 characters)")]
    [InlineData("short-secret-key", "shor...(16 characters)")]
    [InlineData(null, "(not set)")]
    public void Keys_are_masked(string? key, string expected) => Assert.Equal(expected, ConfigStore.Mask(key));
}
