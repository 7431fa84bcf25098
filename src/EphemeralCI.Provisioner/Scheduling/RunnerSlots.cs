using EphemeralCI.Persistence;
using EphemeralCI.Provisioner.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.ChangeTracking;

namespace EphemeralCI.Provisioner.Scheduling;

/// <summary>
/// The event the limiter's pump waits for: a committed change that may let a waiting job start — a
/// runner gave up its slot (released, destroyed, queued again), a job joined or left the wait. Raised
/// by <see cref="RunnerSlotsInterceptor"/> from what was saved, so the reaper, the reconciler and the
/// supervisor need not know the limiter exists.
/// </summary>
public sealed class RunnerSlots
{
    private readonly SemaphoreSlim _changed = new(0, 1);

    public void Changed()
    {
        try { _changed.Release(); } catch (SemaphoreFullException) { /* already raised */ }
    }

    /// <summary>True if raised within <paramref name="timeout"/>.</summary>
    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken ct) => _changed.WaitAsync(timeout, ct);

    /// <summary>Whether a runner in <paramref name="state"/> holds one of its backend's and repository's slots.</summary>
    public static bool Holds(RunnerState state) => state is RunnerState.Provisioning or RunnerState.Running or RunnerState.Finished;

    /// <summary>Whether a runner row made (<paramref name="from"/> null) or moved so may let a waiting job start.</summary>
    public static bool MayLetOneStart(RunnerState? from, RunnerState to) =>
        to == RunnerState.Waiting                                   // joined the wait (new, queued again, adopted)
        || (from is { } f && Holds(f) && !Holds(to))                // gave up its slot
        || (from == RunnerState.Waiting && to != RunnerState.Provisioning); // left the wait another way (cancelled)
}

/// <summary>Raises <see cref="RunnerSlots.Changed"/> after the commit of a save that <see cref="RunnerSlots.MayLetOneStart"/>.</summary>
public sealed class RunnerSlotsInterceptor(RunnerSlots slots) : AfterCommitInterceptor
{
    protected override bool Concerns(ChangeTracker changes) => changes.Entries<RunnerRecord>().Any(e => e.State switch
    {
        EntityState.Added => RunnerSlots.MayLetOneStart(null, e.Entity.State),
        EntityState.Modified when e.Property(r => r.State).IsModified =>
            RunnerSlots.MayLetOneStart(e.Property(r => r.State).OriginalValue, e.Entity.State),
        EntityState.Deleted => Holds(e.Property(r => r.State).OriginalValue),
        _ => false,
    });

    private static bool Holds(RunnerState state) => RunnerSlots.Holds(state) || state == RunnerState.Waiting;

    protected override void OnCommitted() => slots.Changed();
}
