using System.Diagnostics;
using EphemeralCI.Provisioner.Teardown;
using Xunit;

namespace EphemeralCI.UnitTests.Attestations;

public sealed class FreshSnapshotTests
{
    [Fact]
    public async Task Checks_that_ask_before_a_look_started_share_it()
    {
        var looks = 0;
        var gate = new TaskCompletionSource();
        var snapshot = new FreshSnapshot<int>(async _ => { var n = Interlocked.Increment(ref looks); await gate.Task; return n; });
        var asked = Stopwatch.GetTimestamp();

        var first = snapshot.GetAsync(asked, default);
        var second = snapshot.GetAsync(asked, default);
        gate.SetResult();

        Assert.Equal(1, await first);
        Assert.Equal(1, await second);
        Assert.Equal(1, looks);
    }

    [Fact]
    public async Task A_check_that_asks_after_a_look_started_gets_a_new_one()
    {
        var looks = 0;
        var snapshot = new FreshSnapshot<int>(_ => Task.FromResult(Interlocked.Increment(ref looks)));

        Assert.Equal(1, await snapshot.GetAsync(Stopwatch.GetTimestamp(), default));
        // Its runner's cleanup ended after the first look began: that look may predate the cleanup.
        Assert.Equal(2, await snapshot.GetAsync(Stopwatch.GetTimestamp(), default));
    }

    [Fact]
    public async Task A_failed_look_is_not_reused()
    {
        var looks = 0;
        var snapshot = new FreshSnapshot<int>(_ => ++looks == 1 ? throw new IOException("boom") : Task.FromResult(looks));
        var asked = Stopwatch.GetTimestamp();

        await Assert.ThrowsAsync<IOException>(() => snapshot.GetAsync(asked, default));
        Assert.Equal(2, await snapshot.GetAsync(asked, default));
    }
}
