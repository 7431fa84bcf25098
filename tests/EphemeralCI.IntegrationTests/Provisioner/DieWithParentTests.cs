using System.Diagnostics;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using EphemeralCI.IntegrationTests.Provisioner;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>
/// The sandbox launch dies with its parent from its first instruction. bubblewrap's --die-with-parent
/// takes effect only once bubblewrap runs; a provisioner killed while the launching shell was still
/// joining the cgroup left a shell that went on to start the sandbox under init. Held in exactly that
/// moment here: the shell blocks writing its pid into a FIFO (standing in for cgroup.procs) until the
/// test reads it, after the parent was SIGKILLed.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class DieWithParentTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eci-dwp-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_parent_killed_while_the_launching_shell_joins_the_cgroup_leaves_no_sandbox_only_with_setpriv(bool setpriv)
    {
        var (argv, marker, fifo) = Launch(parentPid: null);
        // The parent: starts the launch in the background and waits, as the provisioner does.
        var parent = new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", "\"$@\" & wait", "parent" } };
        if (setpriv) parent.ArgumentList.Add(new LocalSandboxOptions().SetprivPath);
        foreach (var a in setpriv ? SandboxCommandBuilder.DieWithParent(argv) : ["/bin/sh", .. argv]) parent.ArgumentList.Add(a);
        using var process = Process.Start(parent)!;
        await Task.Delay(500); // the shell is now blocked in "echo $$ > cgroup.procs"

        process.Kill(entireProcessTree: false);
        await process.WaitForExitAsync();
        // Unblock the shell, if it is still there.
        using var reader = Process.Start(new ProcessStartInfo("timeout") { ArgumentList = { "2", "cat", fifo }, RedirectStandardOutput = true })!;
        await reader.WaitForExitAsync();
        await Task.Delay(500);

        var sandboxes = Sleepers(marker);
        foreach (var pid in sandboxes) ProcessTree.Kill(pid);
        if (setpriv)
        {
            Assert.Empty(sandboxes);
            Assert.NotEqual(0, reader.ExitCode); // nobody was left to write: the shell died with its parent
        }
        else
        {
            // The control: without setpriv the shell outlives its parent and starts the "sandbox" under init.
            Assert.NotEmpty(sandboxes);
        }
    }

    [Fact]
    public async Task A_launch_whose_parent_is_not_the_provisioner_any_more_starts_nothing()
    {
        // The parent died before setpriv set the signal: the shell sees another parent and stops.
        var (argv, marker, _) = Launch(parentPid: 1, fifo: false);
        var psi = new ProcessStartInfo(new LocalSandboxOptions().SetprivPath);
        foreach (var a in SandboxCommandBuilder.DieWithParent(argv)) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        await process.WaitForExitAsync();

        Assert.Equal(125, process.ExitCode);
        Assert.Empty(Sleepers(marker));
    }

    /// <summary>The launch as LocalSandboxBackend builds it, with a stand-in for bubblewrap that sleeps under a marker.</summary>
    private (IReadOnlyList<string> Argv, string Marker, string Fifo) Launch(int? parentPid, bool fifo = true)
    {
        var marker = $"300.{Random.Shared.Next(100000, 999999)}";
        var sandbox = Path.Combine(_dir, "fake-bwrap");
        File.WriteAllText(sandbox, $"#!/bin/sh\nexec sleep {marker}\n");
        File.SetUnixFileMode(sandbox, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var files = new SandboxLaunchFiles(Path.Combine(_dir, "bwrap.args"), Path.Combine(_dir, "seccomp.bpf"), Directory.CreateDirectory(Path.Combine(_dir, "agent-tmp")).FullName);
        File.WriteAllText(files.Arguments, "");
        File.WriteAllText(files.SeccompFilter, "");
        var procs = Path.Combine(_dir, "cgroup.procs");
        if (fifo) Run("mkfifo", procs);
        else File.WriteAllText(procs, "");
        return (SandboxCommandBuilder.JoinCgroupThenExec([procs], sandbox, ["--", "true"], files, parentPid: parentPid), marker, procs);
    }

    private static List<int> Sleepers(string marker) =>
        SandboxProcesses.All().Where(p => p.CommandLine.Contains("sleep " + marker, StringComparison.Ordinal)).Select(p => p.Pid).ToList();

    private static void Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }
}
