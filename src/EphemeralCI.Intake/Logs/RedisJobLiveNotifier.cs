using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace EphemeralCI.Intake.Logs;

/// <summary>Wake-ups over Redis pub/sub, so a follower on one intake instance hears a chunk posted to another.</summary>
public sealed class RedisJobLiveNotifier(IConnectionMultiplexer redis, ILogger<RedisJobLiveNotifier> logger) : IJobLiveNotifier
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

    public async Task<JobWakeup> SubscribeAsync(Guid jobId)
    {
        var wakeup = new JobWakeup();
        try
        {
            var subscriber = redis.GetSubscriber();
            var channel = ChannelFor(jobId);
            Action<RedisChannel, RedisValue> handler = (_, _) => wakeup.Signal();
            await subscriber.SubscribeAsync(channel, handler);
            wakeup.OnDispose = async () =>
            {
                try { await subscriber.UnsubscribeAsync(channel, handler); }
                catch (Exception ex) when (ex is RedisException or TimeoutException) { /* connection gone: nothing to undo */ }
            };
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Could not subscribe to live notifications for job {JobId}; following by polling", jobId);
        }
        return wakeup;
    }
}
