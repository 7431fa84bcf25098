using System.Collections.Concurrent;

namespace EphemeralCI.Intake.Logs;

/// <summary>Wake-ups inside one process: the embedded server's stand-in for Redis pub/sub.</summary>
public sealed class InProcessJobLiveNotifier : IJobLiveNotifier
{
    private readonly ConcurrentDictionary<Guid, ConcurrentDictionary<JobWakeup, byte>> _followers = new();

    public Task NotifyAsync(Guid jobId)
    {
        if (_followers.TryGetValue(jobId, out var wakeups))
        {
            foreach (var wakeup in wakeups.Keys) wakeup.Signal();
        }
        return Task.CompletedTask;
    }

    public Task<JobWakeup> SubscribeAsync(Guid jobId)
    {
        var wakeup = new JobWakeup();
        var wakeups = _followers.GetOrAdd(jobId, _ => new());
        wakeups.TryAdd(wakeup, 0);
        wakeup.OnDispose = () =>
        {
            wakeups.TryRemove(wakeup, out _);
            // Drop the job's entry once its last follower leaves (a racing subscriber re-adds it).
            if (wakeups.IsEmpty) _followers.TryRemove(new KeyValuePair<Guid, ConcurrentDictionary<JobWakeup, byte>>(jobId, wakeups));
            return Task.CompletedTask;
        };
        return Task.FromResult(wakeup);
    }
}
