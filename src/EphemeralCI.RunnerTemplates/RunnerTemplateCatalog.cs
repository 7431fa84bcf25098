using EphemeralCI.Contracts.Jobs;
using Microsoft.Extensions.Configuration;

namespace EphemeralCI.RunnerTemplates;

/// <summary>
/// The runner templates from configuration (<c>RunnerTemplates:{name}:…</c>) and template files
/// (<c>RunnerTemplates:Directory</c>), each with its content hash; a built-in <c>default</c> when none
/// are configured so a single machine works out of the box. The one catalog of the intake (which
/// templates a job may name) and the provisioner (what a runner is made from): both read the same
/// templates by the same rules. A bad definition stops start-up naming the setting.
/// </summary>
public sealed class RunnerTemplateCatalog
{
    private readonly IReadOnlyDictionary<string, LoadedTemplate> _templates;

    public RunnerTemplateCatalog(IReadOnlyDictionary<string, RunnerTemplateDefinition> templates)
        : this(templates.ToDictionary(t => t.Key, t => new LoadedTemplate(t.Key, t.Value, RunnerTemplateLoader.HashOf(t.Value), "code")))
    {
    }

    public RunnerTemplateCatalog(IReadOnlyDictionary<string, LoadedTemplate> templates)
    {
        foreach (var (name, loaded) in templates)
        {
            if (RunnerTemplateLoader.Check(loaded.Definition) is { } bad)
            {
                throw new InvalidOperationException($"Configuration setting '{RunnerTemplateDefinition.Section}:{name}:{bad.Property}' {bad.Problem}.");
            }
        }
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

    /// <summary>The template of this name (none: <c>default</c>), or null.</summary>
    public RunnerTemplateDefinition? Find(string? name) => TryGetLoaded(name, out var loaded) ? loaded!.Definition : null;

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
