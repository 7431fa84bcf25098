using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Scheduling;
using Xunit;

namespace EphemeralCI.UnitTests.Provisioner;

public sealed class RunnerEventIdsTests
{
    [Fact]
    public void One_id_per_runner_and_event_the_same_every_time()
    {
        var id = RunnerEventIds.For("runner-a", JobEventTypes.RunnerFinished);
        Assert.Equal(id, RunnerEventIds.For("runner-a", JobEventTypes.RunnerFinished));
        Assert.NotEqual(id, RunnerEventIds.For("runner-b", JobEventTypes.RunnerFinished));
        Assert.NotEqual(id, RunnerEventIds.For("runner-a", JobEventTypes.RunnerDestroyed));
        Assert.Equal(5, id.Version);
        // The provisioner announces under the id the intake records under.
        Assert.Equal(id, RunnerMessageIds.Finished("runner-a"));
        Assert.Equal(RunnerEventIds.For("runner-a", JobEventTypes.RunnerStarted), RunnerMessageIds.Started("runner-a"));
        Assert.Equal(RunnerEventIds.For("runner-a", JobEventTypes.RunnerDestroyed), RunnerMessageIds.Destroyed("runner-a"));
    }
}
