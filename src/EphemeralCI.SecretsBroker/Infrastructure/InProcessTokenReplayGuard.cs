using System.Collections.Concurrent;

namespace EphemeralCI.SecretsBroker.Infrastructure;

/// <summary>The embedded (single-process) default: single-use marks in a dictionary, swept once they expire.</summary>
public sealed class InProcessTokenReplayGuard(TimeProvider clock) : ITokenReplayGuard
{
    private readonly ConcurrentDictionary<string, DateTimeOffset> _used = new(StringComparer.Ordinal);

    public Task<bool> TryConsumeAsync(string tokenId, DateTimeOffset tokenExpiresAt, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(tokenId);
        var now = clock.GetUtcNow();
        if (_used.Count % 1024 == 1023)
        {
            foreach (var (id, until) in _used) if (until <= now) _used.TryRemove(id, out _);
        }
        return Task.FromResult(_used.TryAdd(tokenId, now + RedisTokenReplayGuard.MarkLifetime(tokenExpiresAt, now)));
    }
}
