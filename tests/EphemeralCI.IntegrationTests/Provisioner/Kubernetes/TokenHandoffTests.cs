using System.Diagnostics;
using EphemeralCI.Provisioner.Backends.Kubernetes;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner.Kubernetes;

/// <summary>
/// The runner pod's token handoff, run for real: the agent container's shell command from
/// <see cref="RunnerPodSpecBuilder"/> in a bubblewrap sandbox whose /var/run/eci holds what the init
/// container copied there. The "agent" is a script that reads its stdin and then runs a "step" looking for the token.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class TokenHandoffTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eci-k8s-token-").FullName;

    [Fact]
    public async Task The_agent_gets_the_token_on_stdin_and_a_step_finds_no_copy_of_it()
    {
        var tokenDir = Directory.CreateDirectory(Path.Combine(_dir, "token")).FullName;
        await File.WriteAllTextAsync(Path.Combine(tokenDir, RunnerPodSpecBuilder.TokenKey), "the.job.token\n");
        var agent = Path.Combine(_dir, "agent.sh");
        await File.WriteAllTextAsync(agent,
            "#!/bin/sh\n" +
            "read -r token; echo \"agent-got=$token\"\n" +
            // A step: the agent's uid, the same container.
            $"sh -c 'cat {RunnerPodSpecBuilder.TokenDirectory}/{RunnerPodSpecBuilder.TokenKey} 2>/dev/null && echo step-read-token || echo step-found-nothing; ls -A {RunnerPodSpecBuilder.TokenDirectory} | wc -l | sed s/^/files-left=/'\n");
        File.SetUnixFileMode(agent, UnixFileMode.UserRead | UnixFileMode.UserExecute);

        // bubblewrap does not create a mount point through a link: on a host where /var/run -> /run, bind at the link's target.
        var tokenMount = new DirectoryInfo("/var/run").LinkTarget is { } runTarget
            ? Path.Combine("/", runTarget.TrimStart('/'), Path.GetFileName(RunnerPodSpecBuilder.TokenDirectory))
            : RunnerPodSpecBuilder.TokenDirectory;
        var psi = new ProcessStartInfo("bwrap") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])["--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--tmpfs", "/run", "--bind", tokenDir, tokenMount,
                     "--ro-bind", agent, "/run/agent.sh", "--", "sh", "-c", RunnerPodSpecBuilder.AgentShell("/run/agent.sh")])
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var output = await p.StandardOutput.ReadToEndAsync();
        var error = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();

        Assert.True(p.ExitCode == 0, error);
        Assert.Contains("agent-got=the.job.token", output);
        Assert.Contains("step-found-nothing", output);
        Assert.DoesNotContain("step-read-token", output);
        Assert.Contains("files-left=0", output);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
