using EphemeralCI.Provisioner.Backends.LocalSandbox;
using EphemeralCI.Provisioner.Backends.LocalSandbox.Cgroups;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner;

public sealed class CgroupLayoutTests
{
    // This CI machine: v1 controllers, a v2 tree at /sys/fs/cgroup/unified with no controllers.
    private const string HybridMounts = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """;
    private const string HybridSelf = "8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n2:cpuacct:/\n0::/\n";

    private const string UnifiedMounts = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
    private const string UnifiedSelf = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/eci.service\n";

    [Fact]
    public void Hybrid_puts_job_groups_below_our_own_group_in_each_tree()
    {
        var layout = CgroupLayout.Detect(HybridMounts, HybridSelf, "ephemeralci", _ => "");

        Assert.Equal(CgroupMode.Hybrid, layout.Mode);
        Assert.Equal("/sys/fs/cgroup/unified/ephemeralci", layout.UnifiedParent);
        Assert.Equal("/sys/fs/cgroup/memory/process_api/abc/ephemeralci", layout.MemoryParent);
        Assert.Equal("/sys/fs/cgroup/pids/ephemeralci", layout.PidsParent);
        Assert.Equal("/sys/fs/cgroup/cpu/ephemeralci", layout.CpuParent);
        var job = Guid.NewGuid();
        Assert.Equal(4, layout.JobDirectories(job).Count);
        Assert.All(layout.JobDirectories(job), d => Assert.EndsWith("/" + job, d));
    }

    [Fact]
    public void Pure_v2_uses_one_tree_when_it_offers_the_controllers()
    {
        var own = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/eci.service";
        var layout = CgroupLayout.Detect(UnifiedMounts, UnifiedSelf, "ephemeralci",
            dir => dir == own ? "cpuset cpu io memory pids" : null);

        Assert.Equal(CgroupMode.Unified, layout.Mode);
        Assert.Equal(own + "/ephemeralci", layout.UnifiedParent);
        var job = Guid.NewGuid();
        Assert.Equal([$"{own}/ephemeralci/{job}"], layout.JobDirectories(job));
        Assert.Equal(layout.MemoryDirectory(job), layout.PidsDirectory(job));
    }

    [Fact]
    public void Pure_v2_without_delegated_controllers_says_how_to_fix_it()
    {
        var ex = Assert.Throws<CgroupUnavailableException>(() =>
            CgroupLayout.Detect(UnifiedMounts, UnifiedSelf, "ephemeralci", _ => "cpu"));
        Assert.Contains("memory, pids", ex.Message);
        Assert.Contains("Delegate=yes", ex.Message);
    }

    [Fact]
    public void No_cgroup2_at_all_is_refused()
    {
        var v1Only = string.Join('\n', HybridMounts.Split('\n').Where(l => !l.Contains("cgroup2")));
        var ex = Assert.Throws<CgroupUnavailableException>(() => CgroupLayout.Detect(v1Only, HybridSelf, "ephemeralci", _ => ""));
        Assert.Contains("cgroup.kill", ex.Message);
    }

    [Fact]
    public void Hybrid_without_a_pids_tree_names_the_missing_controller()
    {
        var noPids = string.Join('\n', HybridMounts.Split('\n').Where(l => !l.Contains("pids")));
        var ex = Assert.Throws<CgroupUnavailableException>(() => CgroupLayout.Detect(noPids, HybridSelf, "ephemeralci", _ => ""));
        Assert.Contains("pids", ex.Message);
    }

    [Fact]
    public void Limit_counters_are_parsed_from_cgroup_event_files()
    {
        var values = JobCgroups.ParseKeyValues("oom_kill_disable 1\nunder_oom 0\noom_kill 2\n");
        Assert.Equal(2, values["oom_kill"]);
        Assert.Equal(0, values["under_oom"]);
    }

    [Fact]
    public void The_sandbox_joins_every_cgroup_before_it_becomes_bubblewrap()
    {
        var files = new SandboxLaunchFiles("/w/j/bwrap.args", "/w/j/seccomp.bpf", "/w/j/agent-tmp");
        var argv = SandboxCommandBuilder.JoinCgroupThenExec(["/sys/fs/cgroup/unified/e/j/cgroup.procs", "/sys/fs/cgroup/pids/e/j/cgroup.procs"], "/usr/bin/bwrap", ["--unshare-all", "--", "true"], files);

        Assert.Equal("-c", argv[0]);
        Assert.Equal("echo $$ > '/sys/fs/cgroup/unified/e/j/cgroup.procs' || exit 125; echo $$ > '/sys/fs/cgroup/pids/e/j/cgroup.procs' || exit 125; " +
            "exec 3< '/w/j/bwrap.args' 4< '/w/j/seccomp.bpf' 5< '/w/j/agent-tmp' || exit 125; rm -f '/w/j/bwrap.args' '/w/j/seccomp.bpf'; exec \"$@\"", argv[1]);
        Assert.Equal(["/usr/bin/bwrap", "--args", "3", "--", "true"], argv.Skip(3));
        Assert.Throws<ArgumentException>(() => SandboxCommandBuilder.JoinCgroupThenExec(["/x'; rm -rf /; '"], "/usr/bin/bwrap", ["--", "true"], files));
        Assert.Throws<ArgumentException>(() => SandboxCommandBuilder.JoinCgroupThenExec([], "/usr/bin/bwrap", ["--", "true"], files with { Arguments = "/w/j'; reboot; '" }));
    }
}
