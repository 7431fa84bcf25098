using System.Diagnostics;
using System.Runtime.Versioning;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using Xunit;

namespace EphemeralCI.Tests.Sandbox;

/// <summary>What a job sees inside the real bubblewrap sandbox the provisioner builds.</summary>
[UnsupportedOSPlatform("windows")]
public sealed class SandboxIsolationTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "eci-sandbox-tests", Guid.NewGuid().ToString("N")[..8]);
    private readonly Guid _jobId = Guid.NewGuid();

    private async Task<Dictionary<string, string>> ProbeAsync(string script)
    {
        var layout = new SandboxLayout(_jobId, Path.Combine(_root, "workspace"), Path.Combine(_root, "control"),
            Path.Combine(AppContext.BaseDirectory, "runner-agent"), LocalSandboxOptions.ResolveDotnet(null));
        Directory.CreateDirectory(layout.WorkspaceDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.CreateDirectory(layout.ControlDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var args = SandboxCommandBuilder.Build(layout, Path.Exists, p => new FileInfo(p).LinkTarget, ["/usr/bin/bash", "-c", script]);
        var psi = new ProcessStartInfo(new LocalSandboxOptions().BwrapPath) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["HOST_SECRET"] = "must-not-leak";
        using var p = Process.Start(psi)!;
        var stdout = await p.StandardOutput.ReadToEndAsync();
        var stderr = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"sandbox failed ({p.ExitCode}): {stderr}");
        return stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv.Length > 1 ? kv[1] : "");
    }

    [Fact]
    public async Task The_job_is_an_unprivileged_user_in_a_fresh_read_only_root_with_only_loopback()
    {
        var seen = await ProbeAsync("""
            echo "uid=$(id -u)"
            echo "caps=$(grep CapEff /proc/self/status | awk '{print $2}')"
            echo "shadow=$([ -e /etc/shadow ] && echo present || echo absent)"
            echo "usr_write=$(touch /usr/eci-probe 2>/dev/null && echo yes || echo no)"
            echo "root_write=$(touch /eci-probe 2>/dev/null && echo yes || echo no)"
            echo "etc_write=$(touch /etc/eci-probe 2>/dev/null && echo yes || echo no)"
            echo "tmp_write=$(touch /tmp/eci-probe 2>/dev/null && echo yes || echo no)"
            echo "workspace_write=$(echo hi > /workspace/probe && echo yes || echo no)"
            echo "pwd=$(pwd)"
            echo "interfaces=$(tail -n +3 /proc/net/dev | awk -F: '{gsub(/ /,"",$1); print $1}' | tr '\n' ',')"
            echo "pid1=$(cat /proc/1/comm)"
            echo "processes=$(ls /proc | grep -c '^[0-9]')"
            echo "hostname=$(cat /proc/sys/kernel/hostname)"
            echo "host_secret=${HOST_SECRET:-unset}"
            echo "home_dirs=$(ls /home 2>/dev/null | wc -l)"
            echo "agent=$(ls /opt/eci/agent/EphemeralCI.RunnerAgent.dll 2>/dev/null)"
            """);

        Assert.Equal("1000", seen["uid"]);
        Assert.Equal("0000000000000000", seen["caps"]);
        Assert.Equal("absent", seen["shadow"]);
        Assert.Equal("no", seen["usr_write"]);
        Assert.Equal("no", seen["root_write"]);
        Assert.Equal("no", seen["etc_write"]);
        Assert.Equal("yes", seen["tmp_write"]);
        Assert.Equal("yes", seen["workspace_write"]);
        Assert.Equal("/workspace", seen["pwd"]);
        Assert.Equal("lo,", seen["interfaces"]);
        Assert.Equal("bwrap", seen["pid1"]);
        Assert.Equal("eci-runner", seen["hostname"]);
        Assert.Equal("unset", seen["host_secret"]);
        Assert.Equal("0", seen["home_dirs"]);
        Assert.Equal("/opt/eci/agent/EphemeralCI.RunnerAgent.dll", seen["agent"]);
        // The job's file is on the host, in the job's own workspace.
        Assert.Equal("hi\n", await File.ReadAllTextAsync(Path.Combine(_root, "workspace", "probe")));
    }

    public void Dispose() => LocalSandboxBackend.DeleteTree(_root);
}
