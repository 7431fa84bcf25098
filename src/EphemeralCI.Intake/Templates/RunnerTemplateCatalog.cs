using EphemeralCI.Contracts.Jobs;
using EphemeralCI.RunnerTemplates;
using Microsoft.Extensions.Configuration;

namespace EphemeralCI.Intake.Templates;

/// <summary>
/// The runner templates a job may name, read once from the <c>RunnerTemplates</c> section and the
/// template files in <c>RunnerTemplates:Directory</c> (the same loader as the provisioner's).
/// A bad definition stops the service at start-up with the setting's name rather than
/// surfacing later as a confusing job failure.
/// </summary>
public sealed class RunnerTemplateCatalog
{
    private readonly Dictionary<string, RunnerTemplateDefinition> _templates;

    public RunnerTemplateCatalog(IReadOnlyDictionary<string, RunnerTemplateDefinition> templates)
    {
        _templates = new(StringComparer.Ordinal);
        foreach (var (name, definition) in templates)
        {
            Check(name, definition);
            _templates[name] = definition;
        }
        if (_templates.Count == 0)
        {
            _templates[RunnerTemplateDefinition.DefaultName] = new RunnerTemplateDefinition();
        }
    }

    public static RunnerTemplateCatalog FromConfiguration(IConfiguration configuration) =>
        new(RunnerTemplateLoader.Load(configuration).ToDictionary(t => t.Key, t => t.Value.Definition, StringComparer.Ordinal));

    public IReadOnlyCollection<string> Names => _templates.Keys;

    public RunnerTemplateDefinition? Find(string? name) =>
        name is not null && _templates.TryGetValue(name, out var template) ? template : null;

    private static void Check(string name, RunnerTemplateDefinition d)
    {
        var setting = $"{RunnerTemplateDefinition.Section}:{name}";
        if (string.IsNullOrWhiteSpace(d.Backend))
            throw new InvalidOperationException($"Configuration setting '{setting}:Backend' must not be empty.");
        if (d.MaxTimeoutSeconds <= 0)
            throw new InvalidOperationException($"Configuration setting '{setting}:MaxTimeoutSeconds' must be positive.");
        if (d.DefaultTimeoutSeconds <= 0 || d.DefaultTimeoutSeconds > d.MaxTimeoutSeconds)
            throw new InvalidOperationException(
                $"Configuration setting '{setting}:DefaultTimeoutSeconds' must be between 1 and MaxTimeoutSeconds ({d.MaxTimeoutSeconds}).");
    }
}
