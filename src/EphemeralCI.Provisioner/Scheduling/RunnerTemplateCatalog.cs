using EphemeralCI.Contracts.Jobs;
using EphemeralCI.RunnerTemplates;
using Microsoft.Extensions.Configuration;

namespace EphemeralCI.Provisioner.Scheduling;

/// <summary>The runner templates from configuration (<c>RunnerTemplates:{name}:…</c>) and template files
/// (<c>RunnerTemplates:Directory</c>), each with its content hash; a built-in <c>default</c> when none
/// are configured so a single machine works out of the box.</summary>
public sealed class RunnerTemplateCatalog
{
    private readonly IReadOnlyDictionary<string, LoadedTemplate> _templates;

    public RunnerTemplateCatalog(IReadOnlyDictionary<string, RunnerTemplateDefinition> templates)
        : this(templates.ToDictionary(t => t.Key, t => new LoadedTemplate(t.Key, t.Value, RunnerTemplateLoader.HashOf(t.Value), "code")))
    {
    }

    public RunnerTemplateCatalog(IReadOnlyDictionary<string, LoadedTemplate> templates)
    {
        var builtIn = new RunnerTemplateDefinition();
        _templates = templates.Count == 0
            ? new Dictionary<string, LoadedTemplate>(StringComparer.Ordinal)
            {
                [RunnerTemplateDefinition.DefaultName] = new(RunnerTemplateDefinition.DefaultName, builtIn, RunnerTemplateLoader.HashOf(builtIn), "built-in"),
            }
            : new Dictionary<string, LoadedTemplate>(templates, StringComparer.Ordinal);
    }

    public static RunnerTemplateCatalog FromConfiguration(IConfiguration configuration) => new(RunnerTemplateLoader.Load(configuration));

    public IEnumerable<string> Names => _templates.Keys;

    public bool TryGet(string? name, out RunnerTemplateDefinition template)
    {
        var found = TryGetLoaded(name, out var loaded);
        template = loaded?.Definition!;
        return found;
    }

    /// <summary>The template with its content hash.</summary>
    public bool TryGetLoaded(string? name, out LoadedTemplate? template) =>
        _templates.TryGetValue(string.IsNullOrWhiteSpace(name) ? RunnerTemplateDefinition.DefaultName : name, out template);

    /// <summary>The job's own timeout, or the template default when it asks for none, capped at the template maximum.</summary>
    public static int EffectiveTimeoutSeconds(int requested, RunnerTemplateDefinition template)
    {
        var timeout = requested > 0 ? requested : template.DefaultTimeoutSeconds;
        return Math.Clamp(timeout, 1, Math.Max(1, template.MaxTimeoutSeconds));
    }
}
