using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner;

/// <summary>The runners' work root on a real file system: this user's, closed to others, one installation's.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class WorkRootTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "eci-workroot-" + Guid.NewGuid().ToString("N")[..8]);
    private static readonly Guid Mine = Guid.NewGuid();

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void A_missing_work_root_is_made_owner_only_and_marked_as_this_installations()
    {
        var root = Path.Combine(_dir, "a", "runners");
        Assert.Null(WorkRoot.Prepare(root, Mine));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(root));
        Assert.Equal(Mine.ToString(), File.ReadAllText(Path.Combine(root, WorkRoot.MarkerFile)));
        Assert.Null(WorkRoot.Prepare(root, Mine)); // again: still fine
    }

    [Fact]
    public void Another_installations_work_root_is_refused()
    {
        Assert.Null(WorkRoot.Prepare(_dir, Guid.NewGuid()));
        var problem = WorkRoot.Prepare(_dir, Mine);
        Assert.NotNull(problem);
        Assert.Contains("another EphemeralCI installation", problem);
        Assert.Contains("WorkRoot", problem);
    }

    [Fact]
    public void A_work_root_others_can_write_is_refused()
    {
        Directory.CreateDirectory(_dir);
        File.SetUnixFileMode(_dir, (UnixFileMode)Convert.ToInt32("777", 8));
        Assert.Contains("writable by other users", WorkRoot.Prepare(_dir, Mine));
        Assert.False(File.Exists(Path.Combine(_dir, WorkRoot.MarkerFile)), "nothing is written into a refused work root");
    }

    [Fact]
    public void A_work_root_that_is_a_link_is_refused()
    {
        var target = Path.Combine(_dir, "elsewhere");
        Directory.CreateDirectory(target);
        var link = Path.Combine(_dir, "runners");
        Directory.CreateSymbolicLink(link, target);
        Assert.Contains("symbolic link", WorkRoot.Prepare(link, Mine));
    }

    [Fact]
    public void A_work_root_of_another_user_is_refused()
    {
        if (!Environment.IsPrivilegedProcess) return; // only root can give a folder away
        Directory.CreateDirectory(_dir);
        Assert.Equal(0, System.Diagnostics.Process.Start("chown", ["12345", _dir])!.WaitForExitAndGetCode());
        Assert.Contains("belongs to uid 12345", WorkRoot.Prepare(_dir, Mine));
    }

    [Fact]
    public void A_runner_directory_swapped_for_a_link_is_not_used()
    {
        Directory.CreateDirectory(_dir);
        var real = Path.Combine(_dir, "real");
        Directory.CreateDirectory(real);
        WorkRoot.VerifyCreated(real);
        var link = Path.Combine(_dir, "job");
        Directory.CreateSymbolicLink(link, "/etc");
        Assert.Throws<RunnerStartException>(() => WorkRoot.VerifyCreated(link));
    }

    [Fact]
    public void The_default_is_named_by_the_installation()
    {
        var a = WorkRoot.DefaultFor("aaaaaaaaaaaa");
        var b = WorkRoot.DefaultFor("bbbbbbbbbbbb");
        Assert.NotEqual(a, b);
        Assert.DoesNotContain(Path.GetTempPath(), a);
        // Room for {root}/{job id}/control/intake.sock within a Unix socket path's 107 bytes.
        Assert.True(a.Length + 1 + 36 + "/control/intake.sock".Length <= 107 || !Environment.IsPrivilegedProcess, a);
    }
}

internal static class ProcessExtensions
{
    public static int WaitForExitAndGetCode(this System.Diagnostics.Process process)
    {
        process.WaitForExit();
        return process.ExitCode;
    }
}
