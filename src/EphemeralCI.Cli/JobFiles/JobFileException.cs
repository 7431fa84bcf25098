namespace EphemeralCI.Cli.JobFiles;

/// <summary>One problem in a job file, at a 1-based line and column when it has one.</summary>
public sealed record JobFileError(string File, int? Line, int? Column, string Message)
{
    public override string ToString() => Line is { } l ? $"{File}:{l}:{Column ?? 1}: {Message}" : $"{File}: {Message}";
}

/// <summary>The job file cannot be turned into a job spec; every problem found is listed.</summary>
public sealed class JobFileException(IReadOnlyList<JobFileError> errors)
    : CliException(
        errors.Count == 1 ? $"The job file is not valid: {errors[0]}" : $"The job file is not valid ({errors.Count} problems):",
        ExitCodes.Usage,
        errors.Count == 1 ? [] : errors.Select(e => e.ToString()).ToList())
{
    public IReadOnlyList<JobFileError> Errors { get; } = errors;
}
