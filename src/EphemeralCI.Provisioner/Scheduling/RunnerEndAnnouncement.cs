using EphemeralCI.Contracts.Messages;
using EphemeralCI.Messaging;
using EphemeralCI.Provisioner.Infrastructure;

namespace EphemeralCI.Provisioner.Scheduling;

/// <summary>
/// Tells the intake again how a runner that is over ended (RunnerFinished, and RunnerDestroyed once it
/// is gone), when the intake asks about a job after a restart (a RunJob or CancelJob again): the first
/// announcement may have been lost in flight — the embedded server's in-memory transport loses what is
/// queued when the process dies, after its outbox row was marked sent. Under the ids of the first
/// announcement, whose row (and so its body, with the teardown report) is sent again: the intake
/// records each once, however often it hears it.
/// </summary>
public static class RunnerEndAnnouncement
{
    /// <summary>Stages the announcements (the caller saves); false if there was nothing to announce or it is still pending.</summary>
    public static async Task<bool> AnnounceEndAgainAsync(this ProvisionerDbContext db, RunnerRecord runner, TimeProvider clock, CancellationToken ct)
    {
        if (runner.Outcome is not { } outcome || runner.State == RunnerState.Tombstone) return false;
        var finishedAt = runner.FinishedAt ?? clock.GetUtcNow();
        var again = await db.AddToOutboxOnceAsync(RunnerMessageIds.Finished(runner.RunnerId),
            new RunnerFinished(runner.JobId, runner.RunnerId, outcome, runner.ExitCode, runner.Reason, finishedAt, runner.Attempt), clock, sendAgain: true, ct);
        if (runner.DestroyedAt is { } destroyedAt)
        {
            // The row outlives its retention only rarely (a restart more than a day later): then the teardown report is not known here any more.
            again |= await db.AddToOutboxOnceAsync(RunnerMessageIds.Destroyed(runner.RunnerId),
                new RunnerDestroyed(runner.JobId, runner.RunnerId, destroyedAt, Backend: runner.Backend, TemplateHash: runner.TemplateHash, Attempt: runner.Attempt), clock, sendAgain: true, ct);
        }
        return again;
    }
}
