using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Provisioner.Scheduling;
using Microsoft.Extensions.Configuration;
using Xunit;

namespace EphemeralCI.Tests.Provisioner;

public sealed class RunnerTemplateCatalogTests
{
    private static RunnerTemplateCatalog FromConfig(Dictionary<string, string?> values) =>
        RunnerTemplateCatalog.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

    [Fact]
    public void Without_configuration_there_is_a_built_in_default_template()
    {
        var catalog = FromConfig([]);
        Assert.True(catalog.TryGet("default", out var template));
        Assert.Equal("local", template.Backend);
        Assert.Equal(600, template.DefaultTimeoutSeconds);
        Assert.Equal(3600, template.MaxTimeoutSeconds);
        Assert.True(catalog.TryGet(null, out _));
    }

    [Fact]
    public void Configured_templates_are_bound_and_unknown_names_are_refused()
    {
        var catalog = FromConfig(new()
        {
            ["RunnerTemplates:small:Backend"] = "local",
            ["RunnerTemplates:small:MaxTimeoutSeconds"] = "60",
            ["RunnerTemplates:small:DefaultTimeoutSeconds"] = "30", // a default above the maximum is refused at start-up
        });
        Assert.True(catalog.TryGet("small", out var small));
        Assert.Equal(60, small.MaxTimeoutSeconds);
        Assert.False(catalog.TryGet("default", out _));
        Assert.False(catalog.TryGet("Small", out _));
    }

    [Theory]
    [InlineData(0, 600)]     // no timeout asked: the template default
    [InlineData(30, 30)]
    [InlineData(99999, 3600)] // a job cannot widen what its template allows
    public void Effective_timeout_uses_the_default_and_is_capped(int requested, int expected) =>
        Assert.Equal(expected, RunnerTemplateCatalog.EffectiveTimeoutSeconds(requested, new RunnerTemplateDefinition()));
}
