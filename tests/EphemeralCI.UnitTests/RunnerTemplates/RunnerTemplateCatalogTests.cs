using EphemeralCI.RunnerTemplates;
using EphemeralCI.Contracts.Jobs;
using Microsoft.Extensions.Configuration;
using Xunit;

namespace EphemeralCI.UnitTests.RunnerTemplates;

/// <summary>The one catalog the intake (which templates a job may name) and the provisioner (what a runner is made from) share.</summary>
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

    [Fact]
    public void Find_is_what_the_intake_asks_and_agrees_with_TryGet()
    {
        var catalog = FromConfig(new() { ["RunnerTemplates:gpu:Backend"] = "kubernetes", ["RunnerTemplates:gpu:MaxTimeoutSeconds"] = "7200" });
        var gpu = catalog.Find("gpu")!;
        Assert.Equal(("kubernetes", 600, 7200), (gpu.Backend, gpu.DefaultTimeoutSeconds, gpu.MaxTimeoutSeconds));
        Assert.Null(catalog.Find("default")); // configured templates replace the built-in one
        Assert.Null(catalog.Find(null));
    }

    [Fact]
    public void A_default_timeout_above_the_maximum_stops_start_up_naming_the_setting()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => FromConfig(new()
        {
            ["RunnerTemplates:small:DefaultTimeoutSeconds"] = "100",
            ["RunnerTemplates:small:MaxTimeoutSeconds"] = "50",
        }));
        Assert.Contains("RunnerTemplates:small:DefaultTimeoutSeconds", ex.Message);
    }

    [Fact]
    public void A_template_given_in_code_is_checked_by_the_same_rules()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => new RunnerTemplateCatalog(
            new Dictionary<string, RunnerTemplateDefinition> { ["bad"] = new() { Backend = "" } }));
        Assert.Contains("RunnerTemplates:bad:Backend", ex.Message);
    }
}
