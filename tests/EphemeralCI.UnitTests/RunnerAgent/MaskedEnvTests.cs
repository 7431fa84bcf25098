using EphemeralCI.Contracts.Jobs;
using EphemeralCI.RunnerAgent;
using Xunit;

namespace EphemeralCI.UnitTests.RunnerAgent;

public sealed class MaskedEnvTests
{
    [Fact]
    public void The_values_of_variables_named_in_maskedEnv_are_masked_wherever_they_are_set_and_others_are_not()
    {
        var spec = new JobSpec
        {
            Env = new Dictionary<string, string> { ["JOB_LEVEL"] = "job-level-credential", ["PLAIN"] = "plain-value-visible" },
            MaskedEnv = ["JOB_LEVEL", "GITHUB_JIT_CONFIG"],
            Steps = [new StepSpec { Run = "true", Env = new Dictionary<string, string> { ["GITHUB_JIT_CONFIG"] = "eyJqaXQiOiJjb25maWcifQ==" } }],
        };
        var masker = new SecretMasker(JobRunner.MaskedEnvValues(spec));
        var masked = masker.MaskText("a eyJqaXQiOiJjb25maWcifQ== b job-level-credential c plain-value-visible");
        Assert.Equal("a *** b *** c plain-value-visible", masked);
    }
}
