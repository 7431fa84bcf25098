namespace EphemeralCI.Intake.Logs;

/// <summary>
/// Wakes log followers when a job has news (a chunk or a status change). Only the wake-up travels
/// this way: the data is always read from the database, so a lost notification costs at most one
/// poll interval, never a chunk. Redis pub/sub across instances (<see cref="RedisJobLiveNotifier"/>),
/// or in process for the embedded server (<see cref="InProcessJobLiveNotifier"/>).
/// </summary>
public interface IJobLiveNotifier
{
    Task NotifyAsync(Guid jobId);

    /// <summary>Subscribes before the caller reads, so nothing that happens after the read is missed.</summary>
    Task<JobWakeup> SubscribeAsync(Guid jobId);
}

/// <summary>One follower's wake-up signal; coalesces bursts of notifications into one.</summary>
public sealed class JobWakeup : IAsyncDisposable
{
    private readonly SemaphoreSlim _signal = new(0, 1);

    internal Func<Task>? OnDispose { get; set; }

    internal void Signal()
    {
        try { _signal.Release(); } catch (SemaphoreFullException) { /* already pending */ }
    }

    /// <summary>Returns when notified or after <paramref name="timeout"/>, whichever comes first.</summary>
    public Task WaitAsync(TimeSpan timeout, CancellationToken ct) => _signal.WaitAsync(timeout, ct);

    public async ValueTask DisposeAsync()
    {
        if (OnDispose is { } unsubscribe)
        {
            await unsubscribe();
        }
        _signal.Dispose();
    }
}
