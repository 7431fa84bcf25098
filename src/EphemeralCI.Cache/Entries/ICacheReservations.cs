using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace EphemeralCI.Cache.Entries;

/// <summary>
/// One writer per repository, scope, key and version: whoever holds the reservation may upload and
/// commit; everyone else is told the entry is being created. Separate services keep reservations in
/// Redis (<see cref="RedisCacheReservations"/>) so every replica sees them; the all-in-one server uses
/// <see cref="InProcessCacheReservations"/>. The database's unique index stays the last line of defence.
/// </summary>
public interface ICacheReservations
{
    /// <summary>Takes the reservation for <paramref name="owner"/>, or confirms the owner already holds it. False when another job holds it.</summary>
    Task<bool> TryAcquireAsync(string reservation, Guid owner, TimeSpan lifetime, CancellationToken cancellationToken = default);

    /// <summary>Gives the reservation up, only if <paramref name="owner"/> holds it.</summary>
    Task ReleaseAsync(string reservation, Guid owner, CancellationToken cancellationToken = default);
}

public static class CacheReservationNames
{
    /// <summary>A fixed-length name for an entry's reservation: keys can be 512 characters of anything.</summary>
    public static string For(string repository, string scope, string key, string version) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{repository}\n{scope}\n{key}\n{version}")));
}

/// <summary>
/// Reservations as Redis locks: <c>SET NX PX</c> to take, compare-and-delete to release, expiry so a dead writer never blocks a key for long.
/// Keys carry <see cref="CacheOptions.RedisNamespace"/>: a deployment with another database sharing this Redis holds its own reservations.
/// </summary>
public sealed class RedisCacheReservations(IConnectionMultiplexer redis, IOptions<CacheOptions> options) : ICacheReservations
{
    public const string KeyPrefix = "eci:cache:reservation:";

    /// <summary>Where a reservation lives: <c>eci:cache:reservation:{namespace}:{reservation}</c>.</summary>
    public static string KeyOf(string? redisNamespace, string reservation) => $"{KeyPrefix}{redisNamespace}:{reservation}";

    private RedisKey Key(string reservation) => KeyOf(options.Value.RedisNamespace, reservation);

    public async Task<bool> TryAcquireAsync(string reservation, Guid owner, TimeSpan lifetime, CancellationToken cancellationToken = default)
    {
        var db = redis.GetDatabase();
        var value = owner.ToString("N");
        if (await db.LockTakeAsync(Key(reservation), value, lifetime)) return true;
        // Re-reserving one's own entry (a retried request) is not a conflict; extend it instead.
        return await db.LockExtendAsync(Key(reservation), value, lifetime);
    }

    public Task ReleaseAsync(string reservation, Guid owner, CancellationToken cancellationToken = default) =>
        redis.GetDatabase().LockReleaseAsync(Key(reservation), owner.ToString("N"));
}

/// <summary>Reservations in this process only: for the all-in-one server, which is the only writer.</summary>
public sealed class InProcessCacheReservations(TimeProvider clock) : ICacheReservations
{
    private readonly ConcurrentDictionary<string, (Guid Owner, DateTimeOffset Expires)> _held = new(StringComparer.Ordinal);

    public Task<bool> TryAcquireAsync(string reservation, Guid owner, TimeSpan lifetime, CancellationToken cancellationToken = default)
    {
        var now = clock.GetUtcNow();
        var mine = (owner, now + lifetime);
        var current = _held.AddOrUpdate(reservation, mine, (_, held) => held.Owner == owner || held.Expires <= now ? mine : held);
        return Task.FromResult(current.Owner == owner);
    }

    public Task ReleaseAsync(string reservation, Guid owner, CancellationToken cancellationToken = default)
    {
        _held.TryRemove(KeyValuePair.Create(reservation, _held.TryGetValue(reservation, out var held) && held.Owner == owner ? held : default));
        return Task.CompletedTask;
    }
}
