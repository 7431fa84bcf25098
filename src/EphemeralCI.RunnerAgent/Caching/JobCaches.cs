using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using EphemeralCI.Contracts.Jobs;

namespace EphemeralCI.RunnerAgent.Caching;

/// <summary>What happened to one cache of the job: restored (hit on which key) or missed, saved or skipped, with sizes and time.</summary>
/// <param name="Sha256">The archive's SHA-256 (hex): as the cache recorded it on a hit, as computed here on a save; it goes into the job's attestation.</param>
public sealed record CacheOutcome(string Operation, string Key, string Result, string? MatchedKey, long Bytes, TimeSpan Duration, string? Error = null, string? Sha256 = null, string? Scope = null)
{
    public override string ToString() =>
        $"cache {Operation} '{Key}': {Result}{(MatchedKey is not null && MatchedKey != Key ? $" (restore key matched '{MatchedKey}')" : "")}"
        + $", {Bytes} bytes in {Duration.TotalMilliseconds:F0} ms{(Error is null ? "" : $": {Error}")}";
}

/// <summary>
/// The job spec's caches: restored before the steps, saved after a successful job, as tar+zstd
/// archives through the cache's v2 protocol. A cache never fails the job: every problem is an
/// outcome with its error, reported in the log, and the job goes on cold.
/// </summary>
public sealed class JobCaches(CacheServiceClient cache, string workspace)
{
    public const string SkippedExactHit = "skipped (restored by its exact key)";
    // Entries are immutable: a cache restored by its own key would only be archived again to be refused.
    private readonly HashSet<string> _exactHits = new(StringComparer.Ordinal);

    /// <summary>Cache version: paths and archive format, as the toolkit's version hashes paths and compression.</summary>
    public static string VersionOf(CacheSpec spec) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("|", spec.Paths ?? []) + "|tar+zstd|eci-1")));

    public async Task<IReadOnlyList<CacheOutcome>> RestoreAsync(IReadOnlyList<CacheSpec> specs, CancellationToken ct)
    {
        var outcomes = new List<CacheOutcome>();
        foreach (var spec in specs.Where(s => !string.IsNullOrEmpty(s.Key) && s.Paths is { Count: > 0 }))
        {
            var clock = Stopwatch.StartNew();
            var archive = Path.Combine(Path.GetTempPath(), $"eci-cache-{Guid.NewGuid():N}.tzst");
            try
            {
                if (await cache.LookupAsync(spec.Key!, spec.RestoreKeys ?? [], VersionOf(spec), ct) is not { } hit)
                {
                    outcomes.Add(new("restore", spec.Key!, "miss", null, 0, clock.Elapsed));
                    continue;
                }
                await cache.DownloadAsync(hit, archive, ct);
                await CacheArchive.ExtractAsync(archive, workspace, ct);
                outcomes.Add(new("restore", spec.Key!, "hit", hit.MatchedKey, new FileInfo(archive).Length, clock.Elapsed, Sha256: hit.Sha256, Scope: hit.Scope));
                if (hit.MatchedKey == spec.Key) _exactHits.Add(spec.Key!);
            }
            catch (Exception e) when (e is CacheServiceException or CacheArchiveException or HttpRequestException or IOException or InvalidDataException or ZstdSharp.ZstdException)
            {
                outcomes.Add(new("restore", spec.Key!, "failed", null, 0, clock.Elapsed, e.Message));
            }
            finally
            {
                File.Delete(archive);
            }
        }
        return outcomes;
    }

    public async Task<IReadOnlyList<CacheOutcome>> SaveAsync(IReadOnlyList<CacheSpec> specs, CancellationToken ct)
    {
        var outcomes = new List<CacheOutcome>();
        foreach (var spec in specs.Where(s => !string.IsNullOrEmpty(s.Key) && s.Paths is { Count: > 0 }))
        {
            var clock = Stopwatch.StartNew();
            if (_exactHits.Contains(spec.Key!))
            {
                outcomes.Add(new("save", spec.Key!, SkippedExactHit, null, 0, clock.Elapsed));
                continue;
            }
            var archive = Path.Combine(Path.GetTempPath(), $"eci-cache-{Guid.NewGuid():N}.tzst");
            try
            {
                string sha256;
                await using (var file = File.Create(archive))
                {
                    if (await CacheArchive.CreateAsync(workspace, spec.Paths!, file, ct) == 0)
                    {
                        outcomes.Add(new("save", spec.Key!, "skipped (no paths exist)", null, 0, clock.Elapsed));
                        continue;
                    }
                }
                await using (var file = File.OpenRead(archive)) sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(file, ct));
                var saved = await cache.SaveAsync(spec.Key!, VersionOf(spec), archive, sha256, ct);
                outcomes.Add(new("save", spec.Key!, saved ? "saved" : "skipped (already cached)", null, new FileInfo(archive).Length, clock.Elapsed, Sha256: sha256));
            }
            catch (Exception e) when (e is CacheServiceException or CacheArchiveException or HttpRequestException or IOException or UnauthorizedAccessException)
            {
                outcomes.Add(new("save", spec.Key!, "failed", null, 0, clock.Elapsed, e.Message));
            }
            finally
            {
                File.Delete(archive);
            }
        }
        return outcomes;
    }
}
