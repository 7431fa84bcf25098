using EphemeralCI.Provisioner.Backends.LocalSandbox;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner;

public sealed class ProcessStatTests
{
    // Real lines of /proc/<pid>/stat: a sleeping bwrap, and the same one after SIGKILL while the kernel ends it
    // (flags 0x40014c: PF_EXITING, 0x4, is set), with a command name holding a space and a parenthesis.
    private const string Sleeping = "8805 (bwrap) S 8790 8805 8805 0 -1 4194560 133 0 0 0 0 0 0 0 20 0 1 0 1422113 3104768 444 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0";
    private const string Exiting = "8805 (bw rap)) R 8790 8805 8805 0 -1 4194636 133 0 0 0 0 0 0 0 20 0 1 0 1422113 0 0 18446744073709551615 0 0 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 9";

    [Fact]
    public void A_live_process_is_not_exiting()
    {
        var stat = ProcessTree.ParseStat(Sleeping)!;
        Assert.Equal(('S', 8790, 1422113UL), (stat.State, stat.Parent, stat.StartTime));
        Assert.False(stat.Exiting);
    }

    [Fact]
    public void A_process_in_do_exit_is_exiting_whatever_its_name()
    {
        var stat = ProcessTree.ParseStat(Exiting)!;
        Assert.Equal(('R', 8790, 1422113UL), (stat.State, stat.Parent, stat.StartTime));
        Assert.True(stat.Exiting);
    }

    [Theory]
    [InlineData("")]
    [InlineData("8805 (bwrap")]
    [InlineData("8805 (bwrap) S")]
    public void Not_a_stat_line_is_null(string text) => Assert.Null(ProcessTree.ParseStat(text));
}
