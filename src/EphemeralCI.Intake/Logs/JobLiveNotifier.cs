using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace EphemeralCI.Intake.Logs;

/// <summary>
/// Wakes log followers when a job has news (a chunk or a status change). Redis pub/sub carries
/// only the wake-up: the data is always read from Postgres, so a lost notification costs at most
/// one poll interval, never a chunk.
/// </summary>
public sealed class JobLiveNotifier(IConnectionMultiplexer redis, ILogger<JobLiveNotifier> logger)
{
    public static RedisChannel ChannelFor(Guid jobId) => RedisChannel.Literal($"ephemeralci:intake:job:{jobId:N}");

    public async Task NotifyAsync(Guid jobId)
    {
        try
        {
            await redis.GetSubscriber().PublishAsync(ChannelFor(jobId), "changed");
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // Followers still poll; a missing wake-up only delays them.
            logger.LogWarning(ex, "Could not publish the live notification for job {JobId}", jobId);
        }
    }

    /// <summary>Subscribes before the caller reads, so nothing that happens after the read is missed.</summary>
    public async Task<JobWakeup> SubscribeAsync(Guid jobId)
    {
        var wakeup = new JobWakeup();
        try
        {
            var subscriber = redis.GetSubscriber();
            var channel = ChannelFor(jobId);
            Action<RedisChannel, RedisValue> handler = (_, _) => wakeup.Signal();
            await subscriber.SubscribeAsync(channel, handler);
            wakeup.OnDispose = () => subscriber.UnsubscribeAsync(channel, handler);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Could not subscribe to live notifications for job {JobId}; following by polling", jobId);
        }
        return wakeup;
    }
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
            try { await unsubscribe(); } catch (Exception ex) when (ex is RedisException or TimeoutException) { /* connection gone: nothing to undo */ }
        }
        _signal.Dispose();
    }
}
