using EphemeralCI.Provisioner.Backends.LocalSandbox;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner;

public sealed class DieWithParentCommandTests
{
    private static readonly SandboxLaunchFiles Files = new("/w/j/bwrap.args", "/w/j/seccomp.bpf", "/w/j/agent-tmp");

    [Fact]
    public void The_launch_gets_its_death_signal_before_the_shell_and_the_shell_checks_its_parent_first()
    {
        var shell = SandboxCommandBuilder.JoinCgroupThenExec(["/sys/fs/cgroup/x/cgroup.procs"], "/usr/bin/bwrap", ["--x", "--", "true"], Files, parentPid: 4242);
        Assert.StartsWith("[ \"$PPID\" = 4242 ] || exit 125; echo $$ > ", shell[1]);

        var argv = SandboxCommandBuilder.DieWithParent(shell);
        Assert.Equal(["--pdeathsig", "KILL", "--", "/bin/sh", "-c"], argv.Take(5));
        Assert.Equal(shell, argv.Skip(4));
    }

    [Fact]
    public void Without_a_parent_pid_the_shell_is_as_before()
    {
        var shell = SandboxCommandBuilder.JoinCgroupThenExec(["/sys/fs/cgroup/x/cgroup.procs"], "/usr/bin/bwrap", ["--x", "--", "true"], Files);
        Assert.StartsWith("echo $$ > ", shell[1]);
    }
}
