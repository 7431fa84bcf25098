using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Logs;
using EphemeralCI.Intake.Templates;
using Microsoft.Extensions.Configuration;
using System.Text;
using Xunit;

namespace EphemeralCI.UnitTests.Intake;

public sealed class RunnerTemplateCatalogTests
{
    private static RunnerTemplateCatalog FromSettings(Dictionary<string, string?> settings) =>
        RunnerTemplateCatalog.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());

    [Fact]
    public void Empty_section_gives_the_built_in_default_template()
    {
        var catalog = FromSettings([]);
        var template = Assert.IsType<RunnerTemplateDefinition>(catalog.Find("default"));
        Assert.Equal(("local", 600, 3600), (template.Backend, template.DefaultTimeoutSeconds, template.MaxTimeoutSeconds));
    }

    [Fact]
    public void Configured_templates_replace_the_default_and_take_defaults_for_missing_values()
    {
        var catalog = FromSettings(new() { ["RunnerTemplates:gpu:Backend"] = "kubernetes", ["RunnerTemplates:gpu:MaxTimeoutSeconds"] = "7200" });
        Assert.Null(catalog.Find("default"));
        var gpu = catalog.Find("gpu")!;
        Assert.Equal(("kubernetes", 600, 7200), (gpu.Backend, gpu.DefaultTimeoutSeconds, gpu.MaxTimeoutSeconds));
        Assert.Null(catalog.Find(null));
    }

    [Fact]
    public void A_default_timeout_above_the_maximum_stops_start_up_naming_the_setting()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => FromSettings(new()
        {
            ["RunnerTemplates:small:DefaultTimeoutSeconds"] = "100",
            ["RunnerTemplates:small:MaxTimeoutSeconds"] = "50",
        }));
        Assert.Contains("RunnerTemplates:small:DefaultTimeoutSeconds", ex.Message);
    }

    [Fact]
    public void Log_cap_keeps_what_fits_cuts_on_a_character_boundary_and_notes_the_truncation()
    {
        var body = Encoding.UTF8.GetBytes("ab✓cd"); // ✓ is 3 bytes: a b [e2 9c 93] c d
        Assert.Equal("ab✓cd", JobLogStore.KeepWithinCap(body, alreadyStored: 0, cap: 100));
        var cut = JobLogStore.KeepWithinCap(body, alreadyStored: 0, cap: 4); // would split the ✓
        Assert.StartsWith("ab\n[ephemeralci: log truncated", cut);
        Assert.Equal("", JobLogStore.KeepWithinCap(body, alreadyStored: 100, cap: 100));
    }
}
