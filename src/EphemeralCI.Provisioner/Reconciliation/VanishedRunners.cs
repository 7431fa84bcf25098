namespace EphemeralCI.Provisioner.Reconciliation;

/// <summary>
/// Tells a runner that vanished (killed from outside, evicted, its watch lost) from one that is merely
/// ending: a supervised runner's process can be gone a moment before its supervisor has read the exit
/// (the agent's last output is still being drained, the machine is loaded), so only a runner seen
/// without a live process for a whole grace period counts as vanished — whatever the tick interval.
/// </summary>
public sealed class VanishedRunners(TimeSpan grace)
{
    private readonly Dictionary<Guid, DateTimeOffset> _firstSeenDead = [];
    private readonly Lock _gate = new();

    /// <summary>Records one look at the runner; true when it has been dead for at least the grace period.</summary>
    public bool Observe(Guid jobId, bool alive, DateTimeOffset now)
    {
        lock (_gate)
        {
            if (alive)
            {
                _firstSeenDead.Remove(jobId);
                return false;
            }
            if (!_firstSeenDead.TryGetValue(jobId, out var since))
            {
                _firstSeenDead[jobId] = now;
                return false;
            }
            return now - since >= grace;
        }
    }

    /// <summary>Forgets runners not looked at in this pass (finished, destroyed, or decided by someone else).</summary>
    public void KeepOnly(IReadOnlySet<Guid> looked)
    {
        lock (_gate)
        {
            foreach (var id in _firstSeenDead.Keys.Where(id => !looked.Contains(id)).ToList()) _firstSeenDead.Remove(id);
        }
    }
}
