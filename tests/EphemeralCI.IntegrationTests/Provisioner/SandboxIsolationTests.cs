using System.Diagnostics;
using System.Runtime.Versioning;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using EphemeralCI.Provisioner.Backends.LocalSandbox.Seccomp;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>What a job sees inside the real bubblewrap sandbox the provisioner builds.</summary>
[UnsupportedOSPlatform("windows")]
public sealed class SandboxIsolationTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "eci-sandbox-tests", Guid.NewGuid().ToString("N")[..8]);
    private readonly Guid _jobId = Guid.NewGuid();

    /// <summary>Runs <paramref name="script"/> in bash in the sandbox, started exactly as the backend starts it (options and filter through descriptors).</summary>
    private async Task<Dictionary<string, string>> ProbeAsync(string script, bool allowUserNamespaces = false)
    {
        var layout = new SandboxLayout(_jobId, Path.Combine(_root, "workspace"), Path.Combine(_root, "control"),
            Path.Combine(AppContext.BaseDirectory, "runner-agent"), LocalSandboxOptions.ResolveDotnet(null), AllowUserNamespaces: allowUserNamespaces);
        Directory.CreateDirectory(layout.WorkspaceDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.CreateDirectory(layout.ControlDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var launch = Path.Combine(_root, "launch-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(launch, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var args = SandboxCommandBuilder.Build(layout, Path.Exists, p => new FileInfo(p).LinkTarget, ["/usr/bin/bash", "-c", script]);
        var files = SandboxCommandBuilder.WriteLaunchFiles(launch, args, SeccompFilter.For(allowUserNamespaces));
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in SandboxCommandBuilder.JoinCgroupThenExec([], new LocalSandboxOptions().BwrapPath, args, files)) psi.ArgumentList.Add(a);
        psi.Environment["HOST_SECRET"] = "must-not-leak";
        // Started as the backend starts sandboxes: from the spawner's own thread. bubblewrap's --die-with-parent kills the
        // sandbox when the *thread* that forked it ends, and a thread-pool thread may end at any time.
        using var spawner = new SandboxSpawner();
        using var p = new Process { StartInfo = psi };
        Assert.True(await spawner.StartAsync(p), "the sandbox did not start");
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

    /// <summary>A syscall(2) through python's ctypes, bypassing any library; prints name=ok or name=ERRNO.</summary>
    private const string Syscall = """
        import ctypes, errno
        libc = ctypes.CDLL(None, use_errno=True)
        def call(name, nr, *args):
            r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
            print(f"{name}={'ok' if r >= 0 else errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())}")
        """;

    [Fact]
    public async Task A_step_cannot_make_a_nested_user_namespace_nor_use_the_refused_system_calls()
    {
        // x86_64 system call numbers.
        var seen = await ProbeAsync($$"""
            unshare -r id >/dev/null 2>&1 && echo "unshare_r=yes" || echo "unshare_r=no"
            unshare -Ur --net true >/dev/null 2>&1 && echo "unshare_net=yes" || echo "unshare_net=no"
            python3 - <<'EOF'
            {{Syscall}}
            call("unshare_user", 272, 0x10000000)
            call("clone_user", 56, 0x10000000 | 17, 0, 0, 0, 0)
            call("clone3", 435, 0, 0)
            call("keyctl", 250, 0, 0)
            call("add_key", 248, 0, 0, 0, 0, 0)
            call("request_key", 249, 0, 0, 0, 0)
            call("bpf", 321, 0, 0, 0)
            call("userfaultfd", 323, 0)
            call("perf_event_open", 298, 0, 0, 0, 0, 0)
            call("io_uring_setup", 425, 1, 0)
            call("kexec_load", 246, 0, 0, 0, 0)
            call("init_module", 175, 0, 0, 0)
            call("finit_module", 313, -1, 0, 0)
            call("personality_no_aslr", 135, 0x0040000)
            call("personality_no_aslr_high_bit", 135, 0x80040000)
            call("personality_query", 135, 0xffffffff)
            call("ptrace_attach_init", 101, 16, 1, 0, 0)
            call("ptrace_seize_init", 101, 0x4206, 1, 0, 0)
            EOF
            echo "setarch_r=$(setarch -R true >/dev/null 2>&1 && echo yes || echo no)"
            echo "threads=$(python3 -c 'import threading; t = threading.Thread(target=lambda: None); t.start(); t.join(); print("ok")')"
            echo "strace_own_child=$(strace -f -o /dev/null true >/dev/null 2>&1 && echo yes || echo no)"
            echo "seccomp_mode=$(grep Seccomp: /proc/self/status | awk '{print $2}')"
            echo "init_seccomp_mode=$(grep Seccomp: /proc/1/status | awk '{print $2}')"
            """);

        Assert.Equal("no", seen["unshare_r"]);
        Assert.Equal("no", seen["unshare_net"]);
        Assert.Equal("EPERM", seen["unshare_user"]);
        Assert.Equal("EPERM", seen["clone_user"]);
        Assert.Equal("ENOSYS", seen["clone3"]);
        foreach (var call in new[] { "keyctl", "add_key", "request_key", "bpf", "userfaultfd", "perf_event_open", "kexec_load", "init_module", "finit_module" })
        {
            Assert.True(seen[call] == "EPERM", $"{call} returned {seen[call]}");
        }
        Assert.Equal("ENOSYS", seen["io_uring_setup"]);
        Assert.Equal("EPERM", seen["personality_no_aslr"]);
        Assert.Equal("EPERM", seen["personality_no_aslr_high_bit"]);
        Assert.Equal("ok", seen["personality_query"]);
        Assert.Equal("no", seen["setarch_r"]);
        Assert.Equal("EPERM", seen["ptrace_attach_init"]);
        Assert.Equal("EPERM", seen["ptrace_seize_init"]);
        // What must keep working under the filter: threads (clone3 falls back to clone), a debugger of its own child.
        Assert.Equal("ok", seen["threads"]);
        Assert.Equal("yes", seen["strace_own_child"]);
        // bubblewrap's init (pid 1) is filtered too, not only the command.
        Assert.Equal("2", seen["seccomp_mode"]);
        Assert.Equal("2", seen["init_seccomp_mode"]);
    }

    [Fact]
    public async Task A_template_that_allows_user_namespaces_gets_them_and_nothing_else_of_the_filter_is_relaxed()
    {
        var seen = await ProbeAsync($$"""
            echo "unshare_r=$(unshare -r id -u 2>/dev/null || echo refused)"
            python3 - <<'EOF'
            {{Syscall}}
            call("bpf", 321, 0, 0, 0)
            call("clone3", 435, 0, 0)
            EOF
            """, allowUserNamespaces: true);

        Assert.Equal("0", seen["unshare_r"]);
        Assert.Equal("EPERM", seen["bpf"]);
        Assert.Equal("ENOSYS", seen["clone3"]);
    }

    [Fact]
    public async Task The_jobs_view_of_process_1_shows_no_host_path()
    {
        var seen = await ProbeAsync("""
            echo "pid1_cmdline=$(tr '\0' ' ' < /proc/1/cmdline)"
            echo "self_fds=$(ls /proc/self/fd | tr '\n' ',')"
            """);

        var cmdline = seen["pid1_cmdline"];
        Assert.StartsWith(new LocalSandboxOptions().BwrapPath + " --args 3 -- /usr/bin/bash -c", cmdline);
        Assert.DoesNotContain(_root, cmdline);
        Assert.DoesNotContain(AppContext.BaseDirectory.TrimEnd('/'), cmdline);
        Assert.DoesNotContain("--bind", cmdline);
        // bubblewrap closed the option and filter descriptors; only the agent's temp directory stays (the agent closes it on exec).
        var fds = seen["self_fds"].Split(',', StringSplitOptions.RemoveEmptyEntries);
        Assert.DoesNotContain("4", fds);
        Assert.Contains("5", fds);
        // The option and filter files were removed once opened.
        Assert.DoesNotContain(Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories), f => f.EndsWith("bwrap.args") || f.EndsWith("seccomp.bpf"));
    }

    public void Dispose() => EphemeralCI.Provisioner.Backends.LocalSandbox.Sandbox.DeleteTree(_root);
}
