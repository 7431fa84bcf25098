namespace EphemeralCI.Contracts.Jobs;

/// <summary>
/// A named runner template as a platform team writes it in configuration (section
/// <c>RunnerTemplates:{name}</c>). The intake checks a job's template name and timeout against
/// these; the provisioner builds the runner from them. Grows with the template issue (image,
/// root filesystem, limits, network mode) by adding properties.
/// </summary>
public sealed class RunnerTemplateDefinition
{
    public const string Section = "RunnerTemplates";
    public const string DefaultName = "default";

    /// <summary>Which backend creates the runner: "local" (bubblewrap sandbox) for now.</summary>
    public string Backend { get; set; } = "local";
    /// <summary>Used when a job asks for no timeout.</summary>
    public int DefaultTimeoutSeconds { get; set; } = 600;
    /// <summary>A job's timeout is capped here: a job cannot widen what its template allows.</summary>
    public int MaxTimeoutSeconds { get; set; } = 3600;
}
