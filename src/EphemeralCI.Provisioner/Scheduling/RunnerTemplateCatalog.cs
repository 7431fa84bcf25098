using EphemeralCI.Contracts.Jobs;
using Microsoft.Extensions.Configuration;

namespace EphemeralCI.Provisioner.Scheduling;

/// <summary>The runner templates from configuration (<c>RunnerTemplates:{name}:…</c>), with a built-in
/// <c>default</c> when none are configured so a single machine works out of the box.</summary>
public sealed class RunnerTemplateCatalog
{
    private readonly IReadOnlyDictionary<string, RunnerTemplateDefinition> _templates;

    public RunnerTemplateCatalog(IReadOnlyDictionary<string, RunnerTemplateDefinition> templates)
    {
        _templates = templates.Count == 0
            ? new Dictionary<string, RunnerTemplateDefinition>(StringComparer.Ordinal) { [RunnerTemplateDefinition.DefaultName] = new() }
            : new Dictionary<string, RunnerTemplateDefinition>(templates, StringComparer.Ordinal);
    }

    public static RunnerTemplateCatalog FromConfiguration(IConfiguration configuration)
    {
        var templates = new Dictionary<string, RunnerTemplateDefinition>(StringComparer.Ordinal);
        foreach (var child in configuration.GetSection(RunnerTemplateDefinition.Section).GetChildren())
        {
            var template = new RunnerTemplateDefinition();
            child.Bind(template);
            templates[child.Key] = template;
        }
        return new RunnerTemplateCatalog(templates);
    }

    public IEnumerable<string> Names => _templates.Keys;

    public bool TryGet(string? name, out RunnerTemplateDefinition template) =>
        _templates.TryGetValue(string.IsNullOrWhiteSpace(name) ? RunnerTemplateDefinition.DefaultName : name, out template!);

    /// <summary>The job's own timeout, or the template default when it asks for none, capped at the template maximum.</summary>
    public static int EffectiveTimeoutSeconds(int requested, RunnerTemplateDefinition template)
    {
        var timeout = requested > 0 ? requested : template.DefaultTimeoutSeconds;
        return Math.Clamp(timeout, 1, Math.Max(1, template.MaxTimeoutSeconds));
    }
}
