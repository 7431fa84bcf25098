using System.Net;
using System.Net.Sockets;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Watchers;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>
/// Jobs that try to outlive, outgrow or look outside their runner, on real bubblewrap and real
/// cgroups. After each, the host has no process, file, mount, cgroup or network namespace of the
/// job, and the next job sees nothing of it.
/// </summary>
[Collection(ProvisionerCollection.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class HostileJobTests(ProvisionerFixture fx)
{
    private const string WaitForGo = "while [ ! -f /workspace/go ]; do sleep 0.05; done\n";

    private static StepSpec Step(string name, string run) => new() { Name = name, Run = run };
    private string Workspace(Guid jobId) => Path.Combine(fx.WorkRoot, jobId.ToString(), "workspace");

    /// <summary>Starts the job, waits until its first step is parked at the "go" file, notes its network namespace, then lets it go.</summary>
    private async Task<string?> RunHeldJobAsync(Guid jobId, FakeJob job, string template = "default")
    {
        await fx.PublishAsync(fx.RunJob(jobId, timeoutSeconds: 60, template: template));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(job.Events.Any(e => e.Type == JobEventTypes.StepStarted)),
            () => $"the job to start; log:\n{job.Log}");
        var ns = HostTraces.NetworkNamespaceOf(jobId);
        Assert.NotNull(ns);
        // Every process of the job, bubblewrap included, is inside the job's cgroup (asked per process,
        // so a step starting meanwhile does not race a snapshot of the group).
        Assert.NotEmpty(fx.Sandbox.JobCgroups.Processes(jobId));
        foreach (var (pid, commandLine) in SandboxProcesses.Of(jobId))
        {
            string cgroups;
            try { cgroups = File.ReadAllText($"/proc/{pid}/cgroup"); }
            catch (IOException) { continue; } // exited meanwhile
            Assert.True(cgroups.Contains($"/{jobId}"), $"{pid} ({commandLine}) is outside the job's cgroup:\n{cgroups}");
        }
        await File.WriteAllTextAsync(Path.Combine(Workspace(jobId), "go"), "");
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);
        return ns;
    }

    private void AssertNoneLeft(Guid jobId, string? ns) => HostTraces.AssertNoneLeft(fx.Sandbox, fx.WorkRoot, jobId, ns);

    /// <summary>Runs a job that lists what a fresh runner sees where the previous job wrote.</summary>
    private async Task<string> NextJobSeesAsync(string probe)
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("look", probe));
        await fx.PublishAsync(fx.RunJob(jobId));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);
        var runner = await fx.RunnerAsync(jobId);
        Assert.True(job.Completion.Task.IsCompleted,
            $"the probe job's agent never reported: runner {runner?.State} {runner?.Reason}, fetches={job.Fetches}, log:\n{job.Log}");
        Assert.True((await job.Completion.Task).Succeeded, job.Log);
        return job.Log;
    }

    [Fact]
    public async Task A_detached_daemon_and_a_double_fork_are_killed_with_the_group()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("escape",
            WaitForGo +
            "setsid nohup sleep 1000 >/dev/null 2>&1 &\n" +
            "( (setsid sleep 1001 >/dev/null 2>&1 &) & )\n" +
            "sleep 0.2; echo escaped"));

        var ns = await RunHeldJobAsync(jobId, job);

        Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
        AssertNoneLeft(jobId, ns);
        Assert.Contains("no-sleepers", await NextJobSeesAsync("pgrep -x sleep || echo no-sleepers"));
    }

    [Fact]
    public async Task A_fork_bomb_is_bounded_by_the_process_limit_and_fails_the_job_with_that_reason()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("bomb", WaitForGo + "bomb() { bomb | bomb & }; bomb; sleep 1000"));

        var ns = await RunHeldJobAsync(jobId, job, ProvisionerFixture.TightTemplate);

        var runner = await fx.RunnerAsync(jobId);
        Assert.Equal(RunnerOutcome.LimitExceeded, runner!.Outcome);
        Assert.Contains("process limit of 128", runner.Reason);
        var finished = Assert.Single((await fx.SentAsync(jobId)).OfType<RunnerFinished>());
        Assert.Equal(RunnerOutcome.LimitExceeded, finished.Outcome);
        AssertNoneLeft(jobId, ns);
    }

    [Fact]
    public async Task A_memory_hog_fails_the_job_as_out_of_memory()
    {
        var jobId = Guid.NewGuid();
        // tail keeps the whole line in memory, and /dev/zero has no newline.
        var job = fx.Intake.Register(jobId, Step("hog", WaitForGo + "head -c 2000m /dev/zero | tail; sleep 1000"));

        var ns = await RunHeldJobAsync(jobId, job, ProvisionerFixture.TightTemplate);

        var runner = await fx.RunnerAsync(jobId);
        Assert.Equal(RunnerOutcome.LimitExceeded, runner!.Outcome);
        Assert.Equal("the job ran out of memory (limit 256 MiB)", runner.Reason);
        AssertNoneLeft(jobId, ns);
    }

    [Fact]
    public async Task Writes_to_usr_etc_tmp_and_a_cron_file_reach_neither_the_host_nor_the_next_job()
    {
        var jobId = Guid.NewGuid();
        var tag = jobId.ToString("N");
        var job = fx.Intake.Register(jobId, Step("write",
            WaitForGo +
            $"for f in /usr/eci-{tag} /etc/eci-{tag} /etc/cron.d/eci-{tag} /var/spool/cron/crontabs/eci-{tag}; do\n" +
            "  if (mkdir -p \"$(dirname $f)\" && echo '* * * * * root touch /pwned' > $f) 2>/dev/null; then echo \"wrote $f\"; else echo \"refused $f\"; fi\n" +
            "done\n" +
            $"echo left > /tmp/eci-{tag} && echo wrote-tmp\n" +
            $"(crontab -l; echo '* * * * * touch /tmp/cron-{tag}') 2>/dev/null | crontab - 2>/dev/null || echo no-crontab\n"));

        var ns = await RunHeldJobAsync(jobId, job);

        var completion = await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(completion.Succeeded, job.Log);
        Assert.Contains($"refused /usr/eci-{tag}", job.Log);
        Assert.Contains($"refused /etc/cron.d/eci-{tag}", job.Log);
        Assert.Contains("wrote-tmp", job.Log); // a private /tmp, writable
        foreach (var path in new[] { $"/usr/eci-{tag}", $"/etc/eci-{tag}", $"/etc/cron.d/eci-{tag}", $"/var/spool/cron/crontabs/eci-{tag}", $"/tmp/eci-{tag}", $"/tmp/cron-{tag}" })
        {
            Assert.False(File.Exists(path), $"{path} must not exist on the host");
        }
        AssertNoneLeft(jobId, ns);
        var seen = await NextJobSeesAsync(
            $"for f in /tmp/eci-{tag} /etc/eci-{tag} /usr/eci-{tag} /etc/cron.d/eci-{tag}; do [ -e $f ] && echo \"found-$f\"; done; echo probe-done");
        Assert.Contains("probe-done", seen);
        Assert.DoesNotContain("found-", seen);
    }

    [Fact]
    public async Task A_job_cannot_read_another_jobs_workspace()
    {
        var victimId = Guid.NewGuid();
        var secret = "secret-" + Guid.NewGuid().ToString("N");
        var victim = fx.Intake.Register(victimId, Step("hold", $"echo {secret} > /workspace/secret.txt; {WaitForGo}"));
        await fx.PublishAsync(fx.RunJob(victimId));
        await ProvisionerFixture.WaitUntilAsync(() => Task.FromResult(File.Exists(Path.Combine(Workspace(victimId), "secret.txt"))), "the victim to write its secret");

        var attackerId = Guid.NewGuid();
        var victimPath = Path.Combine(Workspace(victimId), "secret.txt");
        var attacker = fx.Intake.Register(attackerId, Step("peek",
            $"cat {victimPath} 2>/dev/null || echo no-host-path\n" +
            $"cat /proc/*/root/workspace/secret.txt 2>/dev/null | grep -v '^$' || echo no-proc-root\n" +
            "ls /proc | grep -c '^[0-9]' | sed 's/^/pids-visible=/'\n" +
            $"find / -xdev -name secret.txt 2>/dev/null | grep . || echo not-found"));
        await fx.PublishAsync(fx.RunJob(attackerId));
        await fx.WaitForStateAsync(attackerId, RunnerState.Destroyed);

        Assert.DoesNotContain(secret, attacker.Log);
        Assert.Contains("no-host-path", attacker.Log);
        Assert.Contains("not-found", attacker.Log);
        await File.WriteAllTextAsync(Path.Combine(Workspace(victimId), "go"), "");
        await fx.WaitForStateAsync(victimId, RunnerState.Destroyed);
        Assert.True((await victim.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, victim.Log);
        AssertNoneLeft(victimId, null);
        AssertNoneLeft(attackerId, null);
    }

    [Fact]
    public async Task A_step_cannot_read_the_agents_memory_or_environment()
    {
        // Steps run as the agent's uid; the agent holds the job token and the secrets in memory.
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("peek",
            "agent=$PPID\n" +
            "tr '\\0' ' ' < /proc/$agent/cmdline | sed 's/^/agent-is=/'; echo\n" +
            "cat /proc/self/maps > /dev/null && echo own-maps-readable\n" +
            "cat /proc/$agent/maps > /dev/null 2>&1 && echo agent-maps-readable || echo agent-maps-denied\n" +
            "cat /proc/$agent/environ > /dev/null 2>&1 && echo agent-environ-readable || echo agent-environ-denied\n" +
            "head -c 16 /proc/$agent/mem > /dev/null 2>&1 && echo agent-mem-readable || echo agent-mem-denied\n" +
            "readlink /proc/$agent/fd/0 > /dev/null 2>&1 && echo agent-fd-links-readable || echo agent-fd-links-denied"));
        await fx.PublishAsync(fx.RunJob(jobId));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
        Assert.Contains("agent-is=/opt/eci/agent/EphemeralCI.RunnerAgent", job.Log);
        Assert.Contains("own-maps-readable", job.Log);
        Assert.Contains("agent-maps-denied", job.Log);
        Assert.Contains("agent-environ-denied", job.Log);
        Assert.Contains("agent-mem-denied", job.Log);
        Assert.Contains("agent-fd-links-denied", job.Log);
        AssertNoneLeft(jobId, null);
    }

    [Fact]
    public async Task A_job_cannot_reach_a_host_service_on_loopback()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("reach",
            WaitForGo +
            $"if (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; then echo reached-host; else echo refused-host; fi\n" +
            "ip -o link 2>/dev/null | cut -d: -f2 | tr -d ' ' | tr '\\n' ',' | sed 's/^/links=/'; echo"));

        var ns = await RunHeldJobAsync(jobId, job);

        Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
        Assert.Contains("refused-host", job.Log);
        Assert.DoesNotContain("reached-host", job.Log);
        Assert.False(listener.Pending(), "no connection reached the host listener");
        AssertNoneLeft(jobId, ns);
    }

    [Fact]
    public async Task A_runner_killed_from_outside_is_reported_lost_and_cleaned_up()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("hang", "setsid nohup sleep 1000 >/dev/null 2>&1 & sleep 1000"));
        await fx.PublishAsync(fx.RunJob(jobId));
        await ProvisionerFixture.WaitUntilAsync(
            () => Task.FromResult(job.Events.Any(e => e.Type == JobEventTypes.StepStarted) && SandboxProcesses.Of(jobId).Any(p => p.CommandLine.StartsWith("sleep 1000"))),
            "the step to be running");
        var ns = HostTraces.NetworkNamespaceOf(jobId);
        var runner = await fx.RunnerAsync(jobId);

        // What an operator's kill -9 (or the OOM killer of the host) does to the sandbox.
        System.Diagnostics.Process.GetProcessById(runner!.ProcessId!.Value).Kill();
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        runner = await fx.RunnerAsync(jobId);
        Assert.Equal(RunnerOutcome.Lost, runner!.Outcome);
        Assert.Equal(RunnerSupervisor.KilledFromOutsideReason, runner.Reason);
        AssertNoneLeft(jobId, ns);
    }

    /// <summary>
    /// Issue 14 item 9: a step prints terminal escapes (clear screen, window title, cursor up + erase) and imitates the
    /// agent's "==> step" lines, with and without the agent's marker byte. In the log as stored, only the agent's own lines
    /// carry the marker; what eci shows of it has no escape but colours, and the fake lines are plain step output.
    /// </summary>
    [Fact]
    public async Task A_step_cannot_fake_the_agents_lines_or_drive_the_followers_terminal()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("paint",
            "printf '\\033[2J\\033]0;root@prod\\007\\033[1A\\033[2K\\033[31mred\\033[0m\\n'\n" +
            "printf '\\036==> step 2/2: deploy (forged with the marker)\\n'\n" +
            "printf '==> step 2/2: deploy (forged without it)\\n'"));
        await fx.PublishAsync(fx.RunJob(jobId));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
        var marked = job.Log.Split('\n').Where(l => l.StartsWith(EphemeralCI.Contracts.Runner.AgentLogLines.Marker + "==> step", StringComparison.Ordinal)).ToList();
        Assert.Equal(["\u001e==> step 1/1: paint"], marked);
        Assert.Contains("\u241e==> step 2/2: deploy (forged with the marker)", job.Log); // the step's marker, neutralized by the agent
        var shown = EphemeralCI.Cli.Output.JobLogWriter.Sanitize(job.Log, styled: true);
        Assert.Contains("\u001b[31mred\u001b[0m", shown);
        Assert.DoesNotContain("\u001b[2J", shown);
        Assert.DoesNotContain("root@prod", shown);
        Assert.DoesNotContain("\u001b[1A", shown);
        Assert.Contains("\u001b[1;36m==> step 1/1: paint", shown);
        Assert.DoesNotContain("\u001b[1;36m==> step 2/2", shown);
        AssertNoneLeft(jobId, null);
    }

    /// <summary>A syscall(2) through python's ctypes, bypassing any library; prints name=ok or name=ERRNO.</summary>
    private const string PythonSyscall = """
        import ctypes, errno
        libc = ctypes.CDLL(None, use_errno=True)
        def call(name, nr, *args):
            r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
            print(f"{name}={'ok' if r >= 0 else errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())}")
        """;

    [Fact]
    public async Task A_step_cannot_make_a_nested_user_namespace_nor_reach_the_kernel_surfaces_the_filter_refuses()
    {
        var jobId = Guid.NewGuid();
        // x86_64 numbers, called directly as an exploit would.
        var job = fx.Intake.Register(jobId, Step("escalate", $$"""
            unshare -r id >/dev/null 2>&1 && echo nested-userns-made || echo nested-userns-refused
            unshare -Urn true >/dev/null 2>&1 && echo nested-netns-made || echo nested-netns-refused
            python3 - <<'EOF'
            {{PythonSyscall}}
            call("bpf", 321, 0, 0, 0)
            call("keyctl", 250, 0, 0)
            call("io_uring_setup", 425, 1, 0)
            call("userfaultfd", 323, 0)
            call("perf_event_open", 298, 0, 0, 0, 0, 0)
            call("clone3", 435, 0, 0)
            call("ptrace_attach_agent", 101, 16, 2, 0, 0)
            EOF
            setarch -R true 2>/dev/null && echo aslr-off || echo aslr-stays
            """));
        await fx.PublishAsync(fx.RunJob(jobId));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
        Assert.Contains("nested-userns-refused", job.Log);
        Assert.Contains("nested-netns-refused", job.Log);
        foreach (var refused in new[] { "bpf=EPERM", "keyctl=EPERM", "io_uring_setup=ENOSYS", "userfaultfd=EPERM", "perf_event_open=EPERM", "clone3=ENOSYS", "ptrace_attach_agent=EPERM", "aslr-stays" })
        {
            Assert.Contains(refused, job.Log);
        }
        // The runner's own start says nothing was relaxed.
        Assert.Null(Assert.Single((await fx.SentAsync(jobId)).OfType<RunnerStarted>()).Relaxations);
        AssertNoneLeft(jobId, null);
    }

    [Fact]
    public async Task A_template_that_allows_user_namespaces_gets_them_and_the_timeline_says_so()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("rootless", $$"""
            echo "nested-uid=$(unshare -r id -u)"
            python3 - <<'EOF'
            {{PythonSyscall}}
            call("bpf", 321, 0, 0, 0)
            EOF
            """));
        await fx.PublishAsync(fx.RunJob(jobId, template: ProvisionerFixture.RootlessTemplate));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
        Assert.Contains("nested-uid=0", job.Log);
        Assert.Contains("bpf=EPERM", job.Log); // the rest of the filter stays
        var started = Assert.Single((await fx.SentAsync(jobId)).OfType<RunnerStarted>());
        Assert.Equal([RunnerSandboxSettings.AllowUserNamespacesRelaxation], started.Relaxations);
        AssertNoneLeft(jobId, null);
    }

    [Theory]
    [InlineData("default")]
    [InlineData(ProvisionerFixture.EgressTemplate)]
    public async Task A_step_cannot_reach_admin_routes_or_any_route_through_the_control_plane_sockets(string template)
    {
        var jobId = Guid.NewGuid();
        // What a step would try with the sockets it can see: mint keys, tokens, read secrets' metadata, the OpenAPI document.
        var job = fx.Intake.Register(jobId, Step("pivot",
            "ask() { code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --unix-socket /run/eci/$1 -X $2 http://control-plane$3 || true); echo \"$1 $2 $3 answered [$code]\"; }\n" +
            "ask intake.sock POST /api/v1/api-keys\n" +
            "ask intake.sock GET /openapi/v1.json\n" +
            "ask intake.sock GET /api/v1/runner/job\n" +
            "ask intake.sock POST /api/v1/runner/complete\n" +
            "ask intake.sock GET /health\n"));
        await fx.PublishAsync(fx.RunJob(jobId, template: template));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
        Assert.Equal(5, job.Log.Split('\n').Count(l => l.Contains("answered [000]", StringComparison.Ordinal)));
        AssertNoneLeft(jobId, null);
    }

    [Fact]
    public async Task The_jobs_process_1_shows_no_host_path()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("look", "tr '\\0' ' ' < /proc/1/cmdline | sed 's/^/pid1=/'; echo"));
        await fx.PublishAsync(fx.RunJob(jobId));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
        Assert.Contains("bwrap --args 3 -- /opt/eci/agent/", job.Log);
        Assert.DoesNotContain(fx.WorkRoot, job.Log);
        Assert.DoesNotContain(AppContext.BaseDirectory.TrimEnd('/'), job.Log);
        Assert.DoesNotContain("--bind", job.Log);
        AssertNoneLeft(jobId, null);
    }

    [Fact]
    public async Task A_step_gets_no_descriptor_the_provisioner_inherited_from_whoever_started_it()
    {
        // As a CI system's log pipe or a shell's redirection would be: open in the provisioner's process
        // without close-on-exec. bubblewrap passes every open descriptor on; before the fix the step read it.
        var secretFile = Path.Combine(Path.GetTempPath(), $"eci-inherited-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(secretFile, "inherited-descriptor-content");
        var fd = InheritedFd.OpenWithoutCloseOnExec(secretFile);
        try
        {
            var jobId = Guid.NewGuid();
            var job = fx.Intake.Register(jobId, Step("look",
                "for f in /proc/self/fd/*; do echo \"fd $f -> $(readlink $f)\"; case $(readlink $f) in /*) timeout 1 head -c 100 $f 2>/dev/null; echo;; esac; done"));
            await fx.PublishAsync(fx.RunJob(jobId));
            await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

            Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
            Assert.Contains("fd /proc/self/fd/0", job.Log);
            Assert.DoesNotContain("inherited-descriptor-content", job.Log);
            Assert.DoesNotContain(secretFile, job.Log);
        }
        finally
        {
            InheritedFd.Close(fd);
            File.Delete(secretFile);
        }
    }

    [Fact]
    public async Task A_step_gets_none_of_the_agents_descriptors_and_finds_no_diagnostics_socket()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, Step("look",
            "echo \"fds=$(ls /proc/self/fd | tr '\\n' ,)\"\n" +
            "ls /tmp/dotnet-diagnostic-* >/dev/null 2>&1 && echo diagnostics-socket-found || echo no-diagnostics-socket\n" +
            "echo \"tmpdir=${TMPDIR:-unset}\""));
        await fx.PublishAsync(fx.RunJob(jobId));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
        var fds = job.Log.Split('\n').Single(l => l.StartsWith("fds=", StringComparison.Ordinal))[4..].Split(',', StringSplitOptions.RemoveEmptyEntries);
        Assert.DoesNotContain("4", fds); // the filter's descriptor
        Assert.DoesNotContain("5", fds); // the agent's private temp directory
        Assert.Contains("no-diagnostics-socket", job.Log);
        Assert.Contains("tmpdir=unset", job.Log);
        AssertNoneLeft(jobId, null);
    }
}

/// <summary>Attacks on the managed agent (the .NET runtime's own diagnostics server), with the provisioner running it.</summary>
[Collection(ManagedAgentProvisionerCollection.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class ManagedAgentHostileJobTests(ManagedAgentProvisionerFixture fx)
{
    /// <summary>
    /// The diagnostics IPC handshake dotnet-trace, dotnet-dump and profiler attach begin with (ProcessInfo,
    /// command set 4, command 0); an OK answer (0xFF 0x00) means the step can drive the agent's runtime.
    /// </summary>
    private const string AttachDiagnostics = """
        import glob, socket, struct
        found = 0
        for path in glob.glob("/tmp/dotnet-diagnostic-*") + glob.glob("/tmp/**/dotnet-diagnostic-*", recursive=True):
            found += 1
            try:
                s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(path)
                s.sendall(b"DOTNET_IPC_V1\0" + struct.pack("<HBBH", 20, 4, 0, 0))
                answer = s.recv(20)
                print("attached" if len(answer) >= 18 and answer[16] == 0xFF and answer[17] == 0 else "refused-by-runtime")
            except OSError as e:
                print("connect-failed", e)
        print(f"diagnostic-sockets={found}")
        """;

    [Fact]
    public async Task A_step_cannot_attach_to_the_agents_runtime_through_a_diagnostics_socket()
    {
        var jobId = Guid.NewGuid();
        var job = fx.Intake.Register(jobId, new StepSpec { Name = "attach", Run = $"python3 - <<'EOF'\n{AttachDiagnostics}\nEOF\ntr '\\0' ' ' < /proc/$PPID/cmdline | sed 's/^/agent-is=/'; echo" });
        await fx.PublishAsync(fx.RunJob(jobId));
        await fx.WaitForStateAsync(jobId, RunnerState.Destroyed);

        Assert.True((await job.Completion.Task.WaitAsync(TimeSpan.FromSeconds(10))).Succeeded, job.Log);
        Assert.Contains("EphemeralCI.RunnerAgent.dll", job.Log); // the managed agent really ran
        Assert.DoesNotContain("attached", job.Log);
        Assert.Contains("diagnostic-sockets=0", job.Log);
        HostTraces.AssertNoneLeft(fx.Sandbox, fx.WorkRoot, jobId, null);
    }
}

/// <summary>A descriptor opened the way a parent process's would be: without close-on-exec.</summary>
internal static partial class InheritedFd
{
    public static int OpenWithoutCloseOnExec(string path)
    {
        var fd = Open(path, 0 /* O_RDONLY, and no O_CLOEXEC */);
        return fd >= 0 ? fd : throw new IOException($"open {path} failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
    }

    public static void Close(int fd) => CloseFd(fd);

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "close")]
    private static partial int CloseFd(int fd);
}
