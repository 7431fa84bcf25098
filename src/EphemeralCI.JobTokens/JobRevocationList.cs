using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace EphemeralCI.JobTokens;

/// <summary>
/// Jobs that have ended: their tokens must no longer buy anything anywhere (intake, cache, broker), even
/// before they expire. One list for every service: Redis in the distributed topology, one in-process
/// instance in the all-in-one server. Whoever sees <c>RunnerFinished</c> writes it; every
/// <see cref="JobTokenGate"/> and job-token scheme reads it. Entries expire on their own after
/// <c>retention</c> (longer than any token lives). Marked per attempt: a job retried after its runner was
/// lost (<c>retry.infrastructure</c>) has a new token whose attempt the first attempt's mark must not cover.
/// </summary>
public interface IJobRevocationList
{
    Task RevokeAsync(Guid jobId, int attempt, TimeSpan retention, CancellationToken cancellationToken = default);
    Task<bool> IsRevokedAsync(Guid jobId, int attempt, CancellationToken cancellationToken = default);
}

/// <summary>Shared by every replica of every service: one key per ended job, with a Redis expiry.</summary>
public sealed class RedisJobRevocationList(IConnectionMultiplexer redis) : IJobRevocationList
{
    // The name predates the list being shared (the broker kept it alone); kept so marks survive an upgrade.
    public const string KeyPrefix = "eci:secrets:revoked:";

    public Task RevokeAsync(Guid jobId, int attempt, TimeSpan retention, CancellationToken cancellationToken = default) =>
        redis.GetDatabase().StringSetAsync(Key(jobId, attempt), 1, retention);

    public Task<bool> IsRevokedAsync(Guid jobId, int attempt, CancellationToken cancellationToken = default) =>
        redis.GetDatabase().KeyExistsAsync(Key(jobId, attempt));

    // The first attempt keeps the key it always had.
    private static string Key(Guid jobId, int attempt) => KeyPrefix + jobId.ToString("N") + (attempt > 1 ? $"-{attempt}" : "");
}

/// <summary>The embedded (single-process) default: a dictionary whose entries expire lazily.</summary>
public sealed class InProcessJobRevocationList(TimeProvider clock) : IJobRevocationList
{
    private readonly ConcurrentDictionary<(Guid, int), DateTimeOffset> _revoked = new();

    public Task RevokeAsync(Guid jobId, int attempt, TimeSpan retention, CancellationToken cancellationToken = default)
    {
        var now = clock.GetUtcNow();
        _revoked[(jobId, attempt)] = now + retention;
        // Sweep now and then so a long-running process does not keep every job it ever saw.
        if (_revoked.Count % 1024 == 0)
        {
            foreach (var (id, until) in _revoked) if (until <= now) _revoked.TryRemove(id, out _);
        }
        return Task.CompletedTask;
    }

    public Task<bool> IsRevokedAsync(Guid jobId, int attempt, CancellationToken cancellationToken = default) =>
        Task.FromResult(_revoked.TryGetValue((jobId, attempt), out var until) && until > clock.GetUtcNow());
}

/// <summary>
/// Lets a service record a refused revoked token its own way (the broker writes its audit line) when
/// <see cref="JobTokenGate"/> refuses one. Optional.
/// </summary>
public interface IRevokedJobTokenAudit
{
    Task RecordAsync(JobTokenClaims claims, CancellationToken cancellationToken);
}

public static class JobRevocationListExtensions
{
    /// <summary>
    /// Registers the shared revocation list, unless the host registered one: Redis when the module registered a
    /// Redis client (the intake, broker and cache do when <c>ConnectionStrings:redis</c> is set; they may do so
    /// after this call), else in process. Decided when the list is first needed, not from the connection string
    /// alone: a module without a Redis client of its own (the provisioner) may still see one in its environment
    /// (the AppHost's own variables reach every service it starts), and was then built with a list it could not make.
    /// </summary>
    public static IHostApplicationBuilder AddJobRevocationList(this IHostApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton<IJobRevocationList>(sp => sp.GetService<IConnectionMultiplexer>() is { } redis
            ? new RedisJobRevocationList(redis)
            : new InProcessJobRevocationList(sp.GetService<TimeProvider>() ?? TimeProvider.System));
        return builder;
    }
}
