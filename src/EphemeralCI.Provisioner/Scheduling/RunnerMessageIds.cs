using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;

namespace EphemeralCI.Provisioner.Scheduling;

/// <summary>
/// The outbox message ids of a runner's announcements: one per runner and event, so announcing
/// again (the intake asked again after a restart, a resumed start) reuses the first id and the
/// intake's unique index makes the repeat a no-op.
/// </summary>
public static class RunnerMessageIds
{
    public static Guid Provisioning(string runnerId) => RunnerEventIds.For(runnerId, JobEventTypes.Provisioning);
    public static Guid Started(string runnerId) => RunnerEventIds.For(runnerId, JobEventTypes.RunnerStarted);
    public static Guid Finished(string runnerId) => RunnerEventIds.For(runnerId, JobEventTypes.RunnerFinished);
    public static Guid Destroyed(string runnerId) => RunnerEventIds.For(runnerId, JobEventTypes.RunnerDestroyed);
}
