namespace EphemeralCI.Contracts.Jobs;

/// <summary>
/// One entry of the <c>RunnerTemplates</c> configuration section (the child key is the template
/// name). The intake and the provisioner bind the same section, so these names are shared: add
/// properties, never rename these three.
/// </summary>
public sealed class RunnerTemplateDefinition
{
    public const string Section = "RunnerTemplates";

    /// <summary>The template that exists when the section is empty.</summary>
    public const string DefaultName = "default";

    /// <summary>Which provisioner backend creates runners from this template ("local", "kubernetes").</summary>
    public string Backend { get; set; } = "local";

    /// <summary>Used when a job does not ask for a timeout.</summary>
    public int DefaultTimeoutSeconds { get; set; } = 600;

    /// <summary>The most a job may ask for: a job can narrow its template, never widen it.</summary>
    public int MaxTimeoutSeconds { get; set; } = 3600;
}
