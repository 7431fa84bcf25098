namespace EphemeralCI.Cli;

/// <summary>A failure with a message meant for a person (no stack trace) and the exit code to leave with.</summary>
public class CliException(string message, int exitCode = ExitCodes.Error, IReadOnlyList<string>? details = null) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
    /// <summary>Further lines, e.g. one per invalid field.</summary>
    public IReadOnlyList<string> Details { get; } = details ?? [];
}

/// <summary>The CLI's own exit codes. `eci run` and `eci jobs logs --follow` exit with the job's code instead (see <see cref="JobExitCodes"/>).</summary>
public static class ExitCodes
{
    public const int Success = 0;
    public const int Error = 1;
    /// <summary>Bad usage, an invalid job file, or a request the server refused as invalid (400/422).</summary>
    public const int Usage = 2;
    /// <summary>The server refused the API key (401) or it lacks a scope (403).</summary>
    public const int Auth = 3;
    public const int NotFound = 4;
    /// <summary>The server could not be reached or did not answer like an EphemeralCI intake.</summary>
    public const int Unreachable = 5;
    /// <summary>`eci jobs verify`: the attestation is not valid (signature, subject or teardown check).</summary>
    public const int Invalid = 6;
    /// <summary>Same as timeout(1).</summary>
    public const int TimedOut = 124;
    /// <summary>128 + SIGINT, as a shell reports Ctrl+C.</summary>
    public const int Cancelled = 130;
}

/// <summary>How a finished job becomes the CLI's exit code, so `eci run` can stand in for the job in a CI script.</summary>
public static class JobExitCodes
{
    public static int For(string? status, int? jobExitCode) => status switch
    {
        "succeeded" => ExitCodes.Success,
        // A job that failed with code 0 (or one a process cannot exit with) still has to fail the script.
        "failed" => jobExitCode is > 0 and <= 255 ? jobExitCode.Value : ExitCodes.Error,
        "timed_out" => ExitCodes.TimedOut,
        "cancelled" => ExitCodes.Cancelled,
        _ => ExitCodes.Error,
    };
}
