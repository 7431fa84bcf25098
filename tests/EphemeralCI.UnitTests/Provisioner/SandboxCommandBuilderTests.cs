using EphemeralCI.Provisioner.Backends.LocalSandbox;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner;

public sealed class SandboxCommandBuilderTests
{
    private static readonly Guid JobId = Guid.Parse("11111111-2222-3333-4444-555555555555");
    private static readonly SandboxLayout Layout = new(
        JobId, $"/work/{JobId}/workspace", $"/work/{JobId}/control", "/app/runner-agent", "/usr/share/dotnet/dotnet");

    // A Debian merged-/usr host with every /etc file present, including the ones we must not expose.
    private static readonly HashSet<string> HostPaths = [.. SandboxCommandBuilder.EtcFiles, "/etc/shadow", "/etc/gshadow"];
    private static readonly Dictionary<string, string> HostLinks = new() { ["/bin"] = "usr/bin", ["/lib"] = "usr/lib", ["/lib64"] = "usr/lib64", ["/sbin"] = "usr/sbin" };

    private static IReadOnlyList<string> Build(SandboxLayout? layout = null, Func<string, bool>? exists = null) =>
        SandboxCommandBuilder.Build(layout ?? Layout, exists ?? HostPaths.Contains, p => HostLinks.GetValueOrDefault(p));

    private static bool HasSequence(IReadOnlyList<string> args, params string[] seq) =>
        Enumerable.Range(0, args.Count - seq.Length + 1).Any(i => seq.Select((s, j) => args[i + j] == s).All(x => x));

    [Theory]
    [InlineData("--unshare-all")]
    [InlineData("--unshare-user")]
    [InlineData("--die-with-parent")]
    [InlineData("--new-session")]
    [InlineData("--clearenv")]
    public void Every_isolation_flag_is_present(string flag) => Assert.Contains(flag, Build());

    [Fact]
    public void Runs_as_an_unprivileged_user_without_capabilities_on_a_fresh_read_only_root()
    {
        var args = Build();
        Assert.True(HasSequence(args, "--uid", "1000", "--gid", "1000"));
        Assert.True(HasSequence(args, "--cap-drop", "ALL"));
        Assert.True(HasSequence(args, "--tmpfs", "/"));
        Assert.True(HasSequence(args, "--ro-bind", "/usr", "/usr"));
        Assert.True(HasSequence(args, "--remount-ro", "/"));
        Assert.True(HasSequence(args, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"));
        // No host path is bound writable except the job's own workspace.
        var writable = args.Select((a, i) => (a, i)).Where(x => x.a == "--bind").Select(x => args[x.i + 1]).ToList();
        Assert.Equal([Layout.WorkspaceDirectory], writable);
    }

    [Fact]
    public void Merged_usr_links_follow_the_host_and_missing_ones_are_skipped()
    {
        var args = Build();
        Assert.True(HasSequence(args, "--symlink", "usr/bin", "/bin"));
        Assert.True(HasSequence(args, "--symlink", "usr/lib64", "/lib64"));
        Assert.DoesNotContain("/lib32", args);
    }

    [Fact]
    public void Only_the_allowed_etc_files_are_bound_and_never_shadow()
    {
        var args = Build();
        Assert.True(HasSequence(args, "--ro-bind", "/etc/passwd", "/etc/passwd"));
        Assert.True(HasSequence(args, "--ro-bind", "/etc/ssl", "/etc/ssl"));
        Assert.DoesNotContain(args, a => a.Contains("shadow"));
        var etcBinds = args.Where(a => a.StartsWith("/etc/")).Distinct().ToList();
        Assert.All(etcBinds, path => Assert.Contains(path, SandboxCommandBuilder.EtcFiles));
    }

    [Fact]
    public void Etc_files_missing_on_the_host_are_not_bound()
    {
        var args = Build(exists: p => p == "/etc/passwd");
        Assert.DoesNotContain("/etc/resolv.conf", args);
        Assert.Contains("/etc/passwd", args);
    }

    [Fact]
    public void Workspace_agent_and_control_socket_are_bound_where_the_agent_expects_them()
    {
        var args = Build();
        Assert.True(HasSequence(args, "--bind", Layout.WorkspaceDirectory, "/workspace"));
        Assert.True(HasSequence(args, "--ro-bind", Layout.AgentDirectory, "/opt/eci/agent"));
        Assert.True(HasSequence(args, "--ro-bind", Layout.ControlDirectory, "/run/eci"));
        Assert.True(HasSequence(args, "--chdir", "/workspace"));
        Assert.True(HasSequence(args, "--setenv", "ECI_INTAKE_SOCKET", "/run/eci/intake.sock"));
        Assert.True(HasSequence(args, "--setenv", "ECI_JOB_ID", JobId.ToString()));
        Assert.Equal(["--", "/usr/share/dotnet/dotnet", "/opt/eci/agent/EphemeralCI.RunnerAgent.dll"], args.TakeLast(3));
    }

    [Fact]
    public void Bind_mounts_come_after_the_root_tmpfs_and_the_root_is_made_read_only_after_them()
    {
        var args = Build().ToList();
        var root = args.IndexOf("--tmpfs");
        Assert.Equal("/", args[root + 1]);
        Assert.True(args.IndexOf("--ro-bind") > root);
        Assert.True(args.IndexOf("--remount-ro") > args.LastIndexOf("--bind"));
    }

    [Fact]
    public void A_dotnet_outside_usr_is_bound_read_only_at_a_sandbox_path_so_its_host_path_is_not_on_the_command_line()
    {
        var args = Build(Layout with { DotnetPath = "/root/.dotnet/dotnet" });
        Assert.True(HasSequence(args, "--ro-bind", "/root/.dotnet", "/opt/eci/dotnet"));
        Assert.Equal(["/opt/eci/dotnet/dotnet", "/opt/eci/agent/EphemeralCI.RunnerAgent.dll"], SandboxCommandBuilder.Split(args).Command);
    }

    [Fact]
    public void Nested_user_namespaces_are_disabled_and_the_filter_is_read_from_its_descriptor()
    {
        var args = Build();
        Assert.Contains("--disable-userns", args);
        Assert.True(HasSequence(args, "--seccomp", SandboxCommandBuilder.SeccompFd.ToString()));
        Assert.DoesNotContain("--disable-userns", Build(Layout with { AllowUserNamespaces = true }));
        Assert.True(HasSequence(Build(Layout with { AllowUserNamespaces = true }), "--seccomp", "4"), "the rest of the filter stays");
    }

    [Fact]
    public void The_launch_puts_every_option_in_the_arguments_file_and_only_the_command_on_bubblewraps_command_line()
    {
        var args = Build();
        var files = new SandboxLaunchFiles("/work/j/bwrap.args", "/work/j/seccomp.bpf", "/work/j/agent-tmp");
        var argv = SandboxCommandBuilder.JoinCgroupThenExec(["/sys/fs/cgroup/unified/eci/j/cgroup.procs"], "/usr/bin/bwrap", args, files);

        var bwrapAt = argv.ToList().IndexOf("/usr/bin/bwrap");
        Assert.Equal(["/usr/bin/bwrap", "--args", "3", "--", "/usr/share/dotnet/dotnet", "/opt/eci/agent/EphemeralCI.RunnerAgent.dll"], argv.Skip(bwrapAt));
        Assert.Contains("3< '/work/j/bwrap.args' 4< '/work/j/seccomp.bpf' 5< '/work/j/agent-tmp'", argv[1]);
        var file = System.Text.Encoding.UTF8.GetString(SandboxCommandBuilder.ArgumentsFile(SandboxCommandBuilder.Split(args).Options));
        Assert.Equal(SandboxCommandBuilder.Split(args).Options, file.TrimEnd('\0').Split('\0'));
        Assert.Contains(Layout.WorkspaceDirectory, file);
    }

    [Fact]
    public void The_agent_runs_without_a_diagnostics_socket_and_with_its_private_temp_directory()
    {
        var env = SandboxCommandBuilder.Environment(Layout).ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal("0", env["DOTNET_EnableDiagnostics"]);
        Assert.Equal("/proc/self/fd/5", env["TMPDIR"]);
    }

    [Fact]
    public void The_native_agent_runs_on_its_own_without_any_dotnet_bound_in()
    {
        var layout = Layout with { DotnetPath = null };
        var args = Build(layout);
        Assert.Equal(["--", "/opt/eci/agent/EphemeralCI.RunnerAgent"], args.TakeLast(2));
        Assert.DoesNotContain(args, a => a.Contains("dotnet", StringComparison.Ordinal));
        // Even over a base root, which would otherwise get the host's dotnet bound in.
        var overRoot = Build(layout with { Root = [new RootEntry("usr", "/work/j/root/usr", null)] });
        Assert.DoesNotContain(overRoot, a => a.Contains("dotnet", StringComparison.Ordinal));
    }

    [Fact]
    public void The_job_token_never_appears_in_the_arguments_or_environment()
    {
        Assert.DoesNotContain(SandboxCommandBuilder.Environment(Layout), kv => kv.Key.Contains("TOKEN", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void A_base_root_replaces_the_host_usr_and_etc_with_the_jobs_overlays()
    {
        var layout = Layout with
        {
            Root = [new RootEntry("bin", null, "usr/bin"), new RootEntry("etc", "/work/j/root/etc", null), new RootEntry("usr", "/work/j/root/usr", null)],
        };
        var args = Build(layout);

        Assert.True(HasSequence(args, "--bind", "/work/j/root/usr", "/usr"));
        Assert.True(HasSequence(args, "--bind", "/work/j/root/etc", "/etc"));
        Assert.True(HasSequence(args, "--symlink", "usr/bin", "/bin"));
        Assert.False(HasSequence(args, "--ro-bind", "/usr", "/usr"), "the host's /usr is not used");
        Assert.DoesNotContain("/etc/passwd", args);
        // The base has no dotnet of ours: it is bound in even from under /usr.
        Assert.True(HasSequence(args, "--ro-bind", "/usr/share/dotnet", "/opt/eci/dotnet"));
        Assert.True(args.ToList().IndexOf("--bind") > args.ToList().IndexOf("--tmpfs"), "overlays go onto the fresh root");
    }
}
