using StackExchange.Redis;

namespace EphemeralCI.SecretsBroker.Infrastructure;

/// <summary>
/// Single-use marks in Redis: <c>SET key 1 NX PX ttl</c> is one atomic step, so two concurrent
/// exchanges of the same token (even on two broker replicas) cannot both win. The mark lives exactly
/// as long as the token could still validate, then Redis forgets it on its own.
/// </summary>
public sealed class RedisTokenReplayGuard(IConnectionMultiplexer redis, TimeProvider clock) : ITokenReplayGuard
{
    public const string KeyPrefix = "eci:secrets:exchanged:";

    /// <summary>Tokens are accepted this long past their expiry (JobTokenService's clock skew), so the mark must outlive them by as much.</summary>
    internal static readonly TimeSpan ClockSkew = TimeSpan.FromSeconds(5);

    public async Task<bool> TryConsumeAsync(string tokenId, DateTimeOffset tokenExpiresAt, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(tokenId);
        var ttl = MarkLifetime(tokenExpiresAt, clock.GetUtcNow());
        return await redis.GetDatabase().StringSetAsync(KeyPrefix + tokenId, 1, ttl, When.NotExists);
    }

    /// <summary>Remaining token lifetime plus the validator's skew, never less than one second (Redis needs a positive expiry).</summary>
    internal static TimeSpan MarkLifetime(DateTimeOffset tokenExpiresAt, DateTimeOffset now)
    {
        var ttl = tokenExpiresAt - now + ClockSkew;
        return ttl < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : ttl;
    }
}
