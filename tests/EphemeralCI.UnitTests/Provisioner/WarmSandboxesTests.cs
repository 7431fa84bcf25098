using EphemeralCI.Provisioner.Backends.LocalSandbox;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner;

/// <summary>The backend's list of ready warm sandboxes: oldest first, per template, and a take wakes the pool.</summary>
public sealed class WarmSandboxesTests
{
    [Fact]
    public async Task The_oldest_of_the_jobs_template_is_taken_and_the_pool_is_woken_to_replace_it()
    {
        var warm = new WarmSandboxes();
        Guid a = Guid.NewGuid(), b = Guid.NewGuid(), other = Guid.NewGuid();
        warm.Add("warm", a);
        warm.Add("warm", b);
        warm.Add("other", other);

        Assert.Null(warm.TryTake("no-pool"));
        var waiting = warm.WaitForTakeAsync(TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.False(waiting.IsCompleted);
        Assert.Equal(a, warm.TryTake("warm"));
        await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal([b], warm.Ready("warm"));
        Assert.Equal([other], warm.Ready("other"));
    }

    [Fact]
    public void A_dead_one_is_removed_only_while_still_ready_and_shutdown_takes_all()
    {
        var warm = new WarmSandboxes();
        Guid a = Guid.NewGuid(), b = Guid.NewGuid(), c = Guid.NewGuid();
        warm.Add("warm", a);
        warm.Add("warm", b);
        warm.Add("warm", c);

        Assert.True(warm.Remove("warm", b));
        Assert.Equal([a, c], warm.Ready("warm"));
        Assert.Equal(a, warm.TryTake("warm"));
        Assert.False(warm.Remove("warm", a)); // taken meanwhile: it is the job's now
        Assert.Equal([c], warm.TakeAll());
        Assert.Equal(0, warm.Count("warm"));
    }
}
