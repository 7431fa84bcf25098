namespace EphemeralCI.Cli.Api;

/// <summary>The server answered with an error status.</summary>
public sealed class EciApiException(Problem problem, string method, string path, ApiTarget? target = null)
    : Exception($"{method} {path} answered {problem.Status}: {problem.Title}")
{
    public Problem Problem { get; } = problem;
    public string Method { get; } = method;
    public string RequestPath { get; } = path;
    /// <summary>Which service answered, so the message names it and its credential.</summary>
    public ApiTarget Target { get; } = target ?? ApiTarget.Intake;
}
