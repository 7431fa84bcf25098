using EphemeralCI.Provisioner.Reconciliation;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner;

/// <summary>
/// The reconciler's rule for "vanished": dead for a whole grace period, not for two ticks — at a
/// one-second tick on a loaded machine a runner that has just exited, whose supervisor is still
/// draining its output, was reported lost (CI: 5 of 300 burst jobs).
/// </summary>
public sealed class VanishedRunnersTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_runner_dead_on_consecutive_ticks_within_the_grace_period_has_not_vanished()
    {
        var vanished = new VanishedRunners(TimeSpan.FromSeconds(15));
        var job = Guid.NewGuid();
        for (var s = 0; s < 15; s++) Assert.False(vanished.Observe(job, alive: false, T0.AddSeconds(s)));
        Assert.True(vanished.Observe(job, alive: false, T0.AddSeconds(15)));
    }

    [Fact]
    public void Being_seen_alive_restarts_the_grace_period()
    {
        var vanished = new VanishedRunners(TimeSpan.FromSeconds(10));
        var job = Guid.NewGuid();
        Assert.False(vanished.Observe(job, alive: false, T0));
        Assert.False(vanished.Observe(job, alive: true, T0.AddSeconds(9)));
        Assert.False(vanished.Observe(job, alive: false, T0.AddSeconds(12)));
        Assert.True(vanished.Observe(job, alive: false, T0.AddSeconds(22)));
    }

    [Fact]
    public void A_runner_not_looked_at_in_a_pass_is_forgotten()
    {
        var vanished = new VanishedRunners(TimeSpan.FromSeconds(10));
        var job = Guid.NewGuid();
        Assert.False(vanished.Observe(job, alive: false, T0));
        vanished.KeepOnly(new HashSet<Guid>());
        Assert.False(vanished.Observe(job, alive: false, T0.AddSeconds(30)));
    }
}
