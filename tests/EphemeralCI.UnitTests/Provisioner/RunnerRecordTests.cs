using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Infrastructure;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner;

/// <summary>A runner's state changes only through RunnerRecord.MoveTo, which knows the order.</summary>
public sealed class RunnerRecordTests
{
    private static readonly DateTimeOffset At = new(2026, 12, 3, 9, 0, 0, TimeSpan.Zero);

    private static RunnerRecord New(RunnerState state = RunnerState.Provisioning) =>
        new() { JobId = Guid.NewGuid(), RunnerId = "runner-1", State = state };

    [Fact]
    public void A_runner_lives_forward_from_claim_to_destroyed()
    {
        var r = New();
        r.Start(4242, At, At.AddMinutes(10));
        r.Finish(RunnerOutcome.Exited, 0, null, At.AddMinutes(1));
        r.MoveTo(RunnerState.Released);
        r.Destroy(At.AddMinutes(2));

        Assert.Equal(RunnerState.Destroyed, r.State);
        Assert.Equal((4242, At, At.AddMinutes(1), At.AddMinutes(2)), (r.ProcessId, r.StartedAt!.Value, r.FinishedAt!.Value, r.DestroyedAt!.Value));
        Assert.Equal((RunnerOutcome.Exited, 0), (r.Outcome!.Value, r.ExitCode!.Value));
    }

    [Theory]
    [InlineData(RunnerState.Provisioning, RunnerState.Waiting)] // a start cut short queues again
    [InlineData(RunnerState.Waiting, RunnerState.Provisioning)]
    [InlineData(RunnerState.Waiting, RunnerState.Finished)] // cancelled while waiting
    [InlineData(RunnerState.Provisioning, RunnerState.Finished)] // failed to start
    [InlineData(RunnerState.Finished, RunnerState.Destroyed)] // no release step when the check is off
    public void Allowed_moves(RunnerState from, RunnerState to)
    {
        var r = New(from);
        r.MoveTo(to);
        Assert.Equal(to, r.State);
    }

    [Theory]
    [InlineData(RunnerState.Tombstone, RunnerState.Provisioning)] // cancelled before RunJob: never a runner
    [InlineData(RunnerState.Running, RunnerState.Waiting)]
    [InlineData(RunnerState.Running, RunnerState.Provisioning)]
    [InlineData(RunnerState.Finished, RunnerState.Running)]
    [InlineData(RunnerState.Finished, RunnerState.Finished)] // finished twice: a second outcome would overwrite the first
    [InlineData(RunnerState.Running, RunnerState.Destroyed)] // never destroyed without finishing
    [InlineData(RunnerState.Destroyed, RunnerState.Released)]
    [InlineData(RunnerState.Waiting, RunnerState.Running)] // never running without its slot
    public void Moves_out_of_order_throw_and_change_nothing(RunnerState from, RunnerState to)
    {
        var r = New(from);
        var error = Assert.Throws<InvalidOperationException>(() => r.MoveTo(to));
        Assert.Contains($"from {from} to {to}", error.Message);
        Assert.Equal(from, r.State);
    }
}
