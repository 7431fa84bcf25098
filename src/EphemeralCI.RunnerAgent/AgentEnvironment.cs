using EphemeralCI.Contracts.Runner;

namespace EphemeralCI.RunnerAgent;

/// <summary>What the sandbox gave the agent: where to run steps and the base environment of every step.</summary>
public sealed record AgentEnvironment(string Workspace, string Home, string Path, string? JobId)
{
    public const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /// <summary>
    /// Where step scripts go: the /tmp the steps share. Not the agent's TMPDIR, which in a sandbox is
    /// a directory only the agent can reach (cache archives wait there between hashing and upload).
    /// </summary>
    public string StepTemp { get; init; } = "/tmp";

    public static AgentEnvironment FromProcess() => new(
        Environment.GetEnvironmentVariable(RunnerEnvironment.Workspace) is { Length: > 0 } ws ? ws : Directory.GetCurrentDirectory(),
        Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } home ? home : "/tmp",
        Environment.GetEnvironmentVariable("PATH") is { Length: > 0 } path ? path : DefaultPath,
        Environment.GetEnvironmentVariable(RunnerEnvironment.JobId));
}
