using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace EphemeralCI.Cache.Entries;

/// <summary>What a restore lookup found: the committed entry a job restores (a hit), with what the protocols answer and LRU needs.</summary>
public sealed record RestoreHit(long Id, string Scope, string Key, string Version, DateTimeOffset? CommittedAt, DateTimeOffset LastAccessedAt,
    string? Sha256, long SizeBytes, string? ObjectKey);

/// <summary>A cached answer to one lookup: <see cref="Hit"/> is null for a cached miss.</summary>
public sealed record CachedLookup(RestoreHit? Hit);

/// <summary>
/// What <see cref="ICacheLookups.ProbeAsync"/> saw: the repository's current generation (null when the
/// lookup cache is unavailable, so nothing may be stored) and the answer cached under it, if any
/// (<see cref="CacheLookupNames.Encode"/>d).
/// </summary>
public readonly record struct LookupProbe(string? Generation, string? Answer);

/// <summary>
/// Hot restore lookups, cached so a repeated lookup costs no database round trip. Answers are stored under
/// the repository's generation, which every change that can alter an answer (commit, delete, eviction,
/// expiry, quarantine) replaces after it reached the database. A reader takes the generation before it
/// queries the database, so an answer computed from the old state lands under the old generation, which
/// nobody reads again: a cached answer is never staler than the database. Separate services keep it in
/// Redis (<see cref="RedisCacheLookups"/>) so every replica shares answers and generations; the all-in-one
/// server uses <see cref="InProcessCacheLookups"/>.
/// </summary>
public interface ICacheLookups
{
    /// <summary>The repository's generation and the answer cached for <paramref name="lookup"/> under it. Never throws for an unavailable cache.</summary>
    Task<LookupProbe> ProbeAsync(string repository, string lookup, CancellationToken cancellationToken = default);

    /// <summary>Caches <paramref name="answer"/> under <paramref name="generation"/> (from a probe taken before the database was read).</summary>
    Task StoreAsync(string repository, string generation, string lookup, string answer, CancellationToken cancellationToken = default);

    /// <summary>Drops every cached answer of the repository (a new generation). Call after the change reached the database.</summary>
    Task InvalidateAsync(string repository, CancellationToken cancellationToken = default);
}

public static class CacheLookupNames
{
    /// <summary>
    /// A fixed-length name for one lookup: everything the answer depends on besides the repository (the job's
    /// ref, the default branch it may fall back to, key, restore keys in order, version).
    /// </summary>
    public static string For(string scope, string defaultBranch, string key, IReadOnlyList<string> restoreKeys, string version)
    {
        var text = new StringBuilder(scope.Length + key.Length + version.Length + 64)
            .Append(scope).Append('\n').Append(defaultBranch).Append('\n').Append(version).Append('\n').Append(key);
        // Keys cannot hold control characters (CacheKeyRules), so '\n' separates them unambiguously.
        foreach (var restoreKey in restoreKeys) text.Append('\n').Append(restoreKey);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    /// <summary>
    /// A short id of the database a connection string points at (host, port and database only: replicas' strings may
    /// differ in pooling, timeouts or credentials), the default <see cref="CacheOptions.RedisNamespace"/>. Empty without a connection string.
    /// </summary>
    public static string Namespace(string? connectionString)
    {
        if (string.IsNullOrWhiteSpace(connectionString)) return "";
        var parsed = new System.Data.Common.DbConnectionStringBuilder();
        try
        {
            parsed.ConnectionString = connectionString;
        }
        catch (ArgumentException)
        {
            return "";
        }
        string[] identity = ["host", "server", "data source", "port", "database", "initial catalog"];
        var parts = identity.Where(parsed.ContainsKey).Select(k => $"{k}={parsed[k]}".ToLowerInvariant());
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join(";", parts))).AsSpan(0, 8));
    }

    /// <summary>A short, fixed-length id of a repository for key names.</summary>
    public static string Repository(string repository) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(repository)).AsSpan(0, 16));

    /// <summary>
    /// "-" for a miss; for a hit id, last access, commit time (UTC ticks), whether it is the default branch's entry, SHA-256,
    /// size, object key and key, separated by tabs (none of them holds a control character). The scope and version are not stored: the lookup's name fixes them.
    /// </summary>
    public static string Encode(CachedLookup answer, string defaultBranch) => answer.Hit is not { } hit ? "-" : string.Create(CultureInfo.InvariantCulture,
        $"{hit.Id}\t{hit.LastAccessedAt.UtcTicks}\t{hit.CommittedAt?.UtcTicks ?? 0}\t{(hit.Scope == defaultBranch ? 'd' : 'o')}\t{hit.Sha256}\t{hit.SizeBytes}\t{hit.ObjectKey}\t{hit.Key}");

    /// <summary>The answer <see cref="Encode"/> wrote for a lookup of <paramref name="scope"/>, or null for anything else (an unknown format is "not cached", never a wrong answer).</summary>
    public static CachedLookup? Decode(string? value, string scope, string defaultBranch, string version)
    {
        if (value is null) return null;
        if (value == "-") return new CachedLookup(null);
        var parts = value.Split('\t', 8);
        if (parts.Length != 8
            || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var id)
            || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var accessed)
            || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var committed)
            || accessed > DateTime.MaxValue.Ticks || committed > DateTime.MaxValue.Ticks
            || parts[3] is not ("d" or "o")
            || !long.TryParse(parts[5], NumberStyles.None, CultureInfo.InvariantCulture, out var size))
        {
            return null;
        }
        return new CachedLookup(new RestoreHit(id, parts[3] == "d" ? defaultBranch : scope, parts[7], version,
            committed == 0 ? null : new DateTimeOffset(committed, TimeSpan.Zero), new DateTimeOffset(accessed, TimeSpan.Zero),
            parts[4] is { Length: > 0 } sha ? sha : null, size, parts[6] is { Length: > 0 } objectKey ? objectKey : null));
    }
}

/// <summary>
/// Lookups cached in Redis. Per repository one generation key (a random value: an evicted or expired
/// generation is replaced by a new one, never by an old one, so answers cached under an older generation
/// can never come back) and one key per lookup and generation, with a lifetime. The generation and the
/// answer are read in one round trip (a script); both keys share the repository's hash tag.
/// Redis failing only costs the database round trips it would have saved.
/// </summary>
public sealed class RedisCacheLookups(IConnectionMultiplexer redis, IOptions<CacheOptions> options, ILogger<RedisCacheLookups> logger) : ICacheLookups
{
    public const string KeyPrefix = "eci:cache:lookup:";
    private static readonly TimeSpan GenerationLifetime = TimeSpan.FromDays(1);

    // KEYS[1] generation; ARGV[1] a fresh generation if there is none; ARGV[2] prefix of answer keys; ARGV[3] lookup; ARGV[4] generation lifetime (s).
    private const string ProbeScript = """
        local g = redis.call('GET', KEYS[1])
        if not g then
          redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
          return {ARGV[1], false}
        end
        return {g, redis.call('GET', ARGV[2] .. g .. ':' .. ARGV[3])}
        """;

    private string Prefix(string repository) => PrefixOf(options.Value.RedisNamespace, repository);

    /// <summary>Where a repository's generation (<c>{prefix}gen</c>) and answers (<c>{prefix}{generation}:{lookup}</c>) live.</summary>
    public static string PrefixOf(string? lookupNamespace, string repository) =>
        $"{KeyPrefix}{lookupNamespace}:{{{CacheLookupNames.Repository(repository)}}}:";

    public async Task<LookupProbe> ProbeAsync(string repository, string lookup, CancellationToken cancellationToken = default)
    {
        var prefix = Prefix(repository);
        try
        {
            var result = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(ProbeScript,
                [(RedisKey)(prefix + "gen")],
                [Guid.NewGuid().ToString("N"), prefix, lookup, (long)GenerationLifetime.TotalSeconds]))!;
            return new LookupProbe((string?)result[0], (string?)result[1]);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            logger.LogWarning(e, "Cache lookup cache (Redis) unavailable; answering from the database");
            return new LookupProbe(null, null);
        }
    }

    public async Task StoreAsync(string repository, string generation, string lookup, string answer, CancellationToken cancellationToken = default)
    {
        try
        {
            // Nobody waits for it: the answer is already on its way to the client.
            await redis.GetDatabase().StringSetAsync($"{Prefix(repository)}{generation}:{lookup}", answer,
                options.Value.LookupCacheLifetime, flags: CommandFlags.FireAndForget);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            logger.LogWarning(e, "Cache lookup cache (Redis) unavailable; answering from the database");
        }
    }

    public async Task InvalidateAsync(string repository, CancellationToken cancellationToken = default)
    {
        try
        {
            await redis.GetDatabase().StringSetAsync(Prefix(repository) + "gen", Guid.NewGuid().ToString("N"), GenerationLifetime);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // The change is in the database; the answers cached before it live at most Cache:LookupCacheLifetime,
            // and a hit is checked again (committed, not quarantined) when its download URL is used.
            logger.LogError(e, "Could not invalidate the cached lookups of {Repository} (Redis); they may be stale for up to Cache:LookupCacheLifetime", repository);
        }
    }

}

/// <summary>
/// Lookups cached in this process (the all-in-one server). A repository's answers live in one object with
/// its generation; invalidating replaces the object, so a store racing with it lands in the replaced one,
/// which nobody reads again.
/// </summary>
public sealed class InProcessCacheLookups(IOptions<CacheOptions> options, TimeProvider clock) : ICacheLookups
{
    /// <summary>Answers kept per repository; beyond that its answers are dropped and cached again as they are asked for.</summary>
    public const int MaxAnswersPerRepository = 10_000;

    private sealed class Generation(long number)
    {
        public readonly string Name = number.ToString(CultureInfo.InvariantCulture);
        public readonly long Number = number;
        public readonly ConcurrentDictionary<string, (string Answer, DateTimeOffset Expires)> Answers = new(StringComparer.Ordinal);
    }

    private readonly ConcurrentDictionary<string, Generation> _repositories = new(StringComparer.Ordinal);

    public Task<LookupProbe> ProbeAsync(string repository, string lookup, CancellationToken cancellationToken = default)
    {
        var generation = _repositories.GetOrAdd(repository, static _ => new Generation(0));
        string? answer = null;
        if (generation.Answers.TryGetValue(lookup, out var cached))
        {
            if (cached.Expires > clock.GetUtcNow()) answer = cached.Answer;
            else generation.Answers.TryRemove(KeyValuePair.Create(lookup, cached));
        }
        return Task.FromResult(new LookupProbe(generation.Name, answer));
    }

    public Task StoreAsync(string repository, string generation, string lookup, string answer, CancellationToken cancellationToken = default)
    {
        if (_repositories.TryGetValue(repository, out var current) && current.Name == generation)
        {
            if (current.Answers.Count >= MaxAnswersPerRepository) current.Answers.Clear();
            current.Answers[lookup] = (answer, clock.GetUtcNow() + options.Value.LookupCacheLifetime);
        }
        return Task.CompletedTask;
    }

    public Task InvalidateAsync(string repository, CancellationToken cancellationToken = default)
    {
        _repositories.AddOrUpdate(repository, static _ => new Generation(1), static (_, old) => new Generation(old.Number + 1));
        return Task.CompletedTask;
    }
}
