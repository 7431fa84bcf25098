using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Scheduling;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner;

/// <summary>The limiter's rules on their own: who may start, in which order, and why the others wait.</summary>
public sealed class RunnerLimitRulesTests
{
    private static RunnerLimitRules Rules(int local = 0, int perRepository = 0, params (string Repository, int Limit)[] exceptions)
    {
        var o = new RunnerLimitOptions { PerRepository = perRepository };
        if (local > 0) o.PerBackend["local"] = local;
        foreach (var (repository, limit) in exceptions) o.Repositories[repository] = limit;
        return new RunnerLimitRules(o);
    }

    private static RunnerCounts Holding(int local = 0, params (string Repository, int Count)[] repositories) =>
        new(new Dictionary<string, int> { ["local"] = local }, repositories.ToDictionary(r => r.Repository, r => r.Count));

    private static WaitingRunner Waiting(int n, string repository, string backend = "local") => new(new Guid(n, 0, 0, new byte[8]), backend, repository);

    [Fact]
    public void No_limits_let_everyone_start()
    {
        Assert.Null(Rules().WhyWait("local", "acme/app", Holding(500, ("acme/app", 500)), earlierOfRepositoryWaits: false));
    }

    [Fact]
    public void A_full_backend_makes_a_new_runner_wait_and_says_which_limit()
    {
        var wait = Rules(local: 2).WhyWait("local", "acme/app", Holding(2), false);
        Assert.NotNull(wait);
        Assert.True(wait.Backend);
        Assert.Contains("backend 'local' is at its limit of 2", wait.Reason);
        Assert.Null(Rules(local: 2).WhyWait("local", "acme/app", Holding(1), false));
    }

    [Fact]
    public void A_repository_limit_and_its_exceptions()
    {
        var rules = Rules(perRepository: 1, exceptions: ("acme/big", 3));
        Assert.Contains("repository 'acme/app' is at its limit of 1", rules.WhyWait("local", "acme/app", Holding(0, ("acme/app", 1)), false)!.Reason);
        Assert.Null(rules.WhyWait("local", "acme/big", Holding(0, ("acme/big", 2)), false));
        Assert.False(rules.WhyWait("local", "acme/big", Holding(0, ("acme/big", 3)), false)!.Backend);
        // 0 in the exceptions: that repository is unlimited.
        Assert.Null(Rules(perRepository: 1, exceptions: ("acme/free", 0)).WhyWait("local", "acme/free", Holding(0, ("acme/free", 9)), false));
    }

    [Fact]
    public void A_new_job_queues_behind_earlier_ones_of_its_repository_even_with_room()
    {
        var wait = Rules(local: 10).WhyWait("local", "acme/app", RunnerCounts.None, earlierOfRepositoryWaits: true);
        Assert.Equal(RunnerLimitRules.QueuedBehindReason, wait!.Reason);
    }

    [Fact]
    public void The_pump_fills_free_slots_oldest_first_and_counts_what_it_starts()
    {
        var chosen = Rules(local: 3).ChooseToStart([Waiting(1, "a"), Waiting(2, "b"), Waiting(3, "c"), Waiting(4, "d")], Holding(1));
        Assert.Equal([Waiting(1, "a").JobId, Waiting(2, "b").JobId], chosen);
    }

    [Fact]
    public void A_full_repository_holds_back_only_its_own_later_jobs()
    {
        var rules = Rules(local: 10, perRepository: 1);
        var chosen = rules.ChooseToStart([Waiting(1, "a"), Waiting(2, "a"), Waiting(3, "b")], Holding(0));
        // a's second waits for a's first; b is not held back by a.
        Assert.Equal([Waiting(1, "a").JobId, Waiting(3, "b").JobId], chosen);
    }

    [Fact]
    public void A_full_backend_holds_back_every_later_job_on_it_but_not_another_backend()
    {
        var rules = Rules(local: 1);
        var chosen = rules.ChooseToStart([Waiting(1, "a"), Waiting(2, "b"), Waiting(3, "c", backend: "kubernetes")], Holding(1));
        Assert.Equal([Waiting(3, "c", backend: "kubernetes").JobId], chosen);
    }

    [Fact]
    public void Order_within_a_repository_is_strict_even_when_a_later_job_would_fit_elsewhere()
    {
        // a's first is blocked by its backend; a's second (on another backend) must not overtake it.
        var rules = Rules(local: 1);
        var chosen = rules.ChooseToStart([Waiting(1, "a"), Waiting(2, "a", backend: "kubernetes")], Holding(1));
        Assert.Empty(chosen);
    }

    [Theory]
    [InlineData(null, RunnerState.Waiting, true)]              // a job joined the wait
    [InlineData(null, RunnerState.Provisioning, false)]        // admitted at once: takes a slot
    [InlineData(RunnerState.Finished, RunnerState.Released, true)]  // cleanup done: slot free
    [InlineData(RunnerState.Finished, RunnerState.Destroyed, true)]
    [InlineData(RunnerState.Provisioning, RunnerState.Waiting, true)] // a start cut short queued again
    [InlineData(RunnerState.Waiting, RunnerState.Finished, true)]     // cancelled while waiting: the queue moved
    [InlineData(RunnerState.Waiting, RunnerState.Provisioning, false)] // the pump's own move
    [InlineData(RunnerState.Provisioning, RunnerState.Running, false)]
    [InlineData(RunnerState.Running, RunnerState.Finished, false)]    // still holds its slot until cleaned up
    [InlineData(RunnerState.Released, RunnerState.Destroyed, false)]  // freed already
    public void Which_saved_moves_wake_the_pump(RunnerState? from, RunnerState to, bool wakes) =>
        Assert.Equal(wakes, RunnerSlots.MayLetOneStart(from, to));
}
