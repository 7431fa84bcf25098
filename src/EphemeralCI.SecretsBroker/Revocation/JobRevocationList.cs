using System.Collections.Concurrent;
using StackExchange.Redis;

namespace EphemeralCI.SecretsBroker.Revocation;

/// <summary>
/// Jobs that have ended: their tokens must no longer buy anything here, even before they expire.
/// Entries expire on their own after <c>retention</c> (longer than any token lives).
/// </summary>
public interface IJobRevocationList
{
    Task RevokeAsync(Guid jobId, TimeSpan retention, CancellationToken cancellationToken = default);
    Task<bool> IsRevokedAsync(Guid jobId, CancellationToken cancellationToken = default);
}

/// <summary>Shared by every broker replica: one key per ended job, with a Redis expiry.</summary>
public sealed class RedisJobRevocationList(IConnectionMultiplexer redis) : IJobRevocationList
{
    public const string KeyPrefix = "eci:secrets:revoked:";

    public Task RevokeAsync(Guid jobId, TimeSpan retention, CancellationToken cancellationToken = default) =>
        redis.GetDatabase().StringSetAsync(KeyPrefix + jobId.ToString("N"), 1, retention);

    public Task<bool> IsRevokedAsync(Guid jobId, CancellationToken cancellationToken = default) =>
        redis.GetDatabase().KeyExistsAsync(KeyPrefix + jobId.ToString("N"));
}

/// <summary>The embedded (single-process) default: a dictionary whose entries expire lazily.</summary>
public sealed class InProcessJobRevocationList(TimeProvider clock) : IJobRevocationList
{
    private readonly ConcurrentDictionary<Guid, DateTimeOffset> _revoked = new();

    public Task RevokeAsync(Guid jobId, TimeSpan retention, CancellationToken cancellationToken = default)
    {
        var now = clock.GetUtcNow();
        _revoked[jobId] = now + retention;
        // Sweep now and then so a long-running process does not keep every job it ever saw.
        if (_revoked.Count % 1024 == 0)
        {
            foreach (var (id, until) in _revoked) if (until <= now) _revoked.TryRemove(id, out _);
        }
        return Task.CompletedTask;
    }

    public Task<bool> IsRevokedAsync(Guid jobId, CancellationToken cancellationToken = default) =>
        Task.FromResult(_revoked.TryGetValue(jobId, out var until) && until > clock.GetUtcNow());
}
