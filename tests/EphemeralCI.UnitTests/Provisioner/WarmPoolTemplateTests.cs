using EphemeralCI.RunnerTemplates;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner;

public sealed class WarmPoolTemplateTests
{
    [Fact]
    public void A_warm_pool_is_off_by_default_and_bounded()
    {
        Assert.Equal(0, RunnerTemplateLoader.Parse("t", "backend: local\n", "t.yaml").Definition.WarmPool);
        Assert.Equal(3, RunnerTemplateLoader.Parse("t", "backend: local\nwarmPool: 3\n", "t.yaml").Definition.WarmPool);

        var negative = Assert.Throws<InvalidOperationException>(() => RunnerTemplateLoader.Parse("t", "warmPool: -1\n", "t.yaml"));
        Assert.Contains($"warmPool must be between 0 and {RunnerTemplateLoader.MaxWarmPool}", negative.Message);
        Assert.Throws<InvalidOperationException>(() => RunnerTemplateLoader.Parse("t", $"warmPool: {RunnerTemplateLoader.MaxWarmPool + 1}\n", "t.yaml"));
    }

    [Fact]
    public void Only_the_local_backend_keeps_warm_runners()
    {
        var pod = Assert.Throws<InvalidOperationException>(() =>
            RunnerTemplateLoader.Parse("t", "backend: kubernetes\nimage: x:1\nwarmPool: 2\n", "t.yaml"));
        Assert.Contains("warmPool is supported by the local backend only", pod.Message);
    }
}
