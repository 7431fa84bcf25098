namespace EphemeralCI.Cli.Api;

/// <summary>The server answered with an error status.</summary>
public sealed class EciApiException(Problem problem, string method, string path)
    : Exception($"{method} {path} answered {problem.Status}: {problem.Title}")
{
    public Problem Problem { get; } = problem;
    public string Method { get; } = method;
    public string RequestPath { get; } = path;
}
