namespace EphemeralCI.SecretsBroker.Infrastructure;

/// <summary>
/// Remembers which job tokens were already exchanged, so each token yields secrets exactly once.
/// Separate services use <see cref="RedisTokenReplayGuard"/>; the embedded all-in-one server can
/// register an in-process one before calling <c>AddSecretsBroker</c>.
/// </summary>
public interface ITokenReplayGuard
{
    /// <summary>
    /// Atomically marks <paramref name="tokenId"/> as used until <paramref name="tokenExpiresAt"/>.
    /// Returns false when it was already used: the caller must treat that as a replay.
    /// </summary>
    Task<bool> TryConsumeAsync(string tokenId, DateTimeOffset tokenExpiresAt, CancellationToken cancellationToken = default);
}
