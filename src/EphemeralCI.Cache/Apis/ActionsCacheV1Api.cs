using EphemeralCI.Cache.Telemetry;
using System.Globalization;
using System.Text.RegularExpressions;
using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Cache.Storage;
using EphemeralCI.JobTokens;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Apis;

/// <summary>
/// The GitHub Actions cache service v1 (REST, <c>{ACTIONS_CACHE_URL}_apis/artifactcache/…</c>): look up,
/// reserve, upload chunks with <c>Content-Range</c> (in parallel), commit with the total size. Chunks are
/// staged in the spool folder and hashed as they arrive; on S3, chunks that line up as parts also go on to the
/// store as they arrive, and commit only completes the multipart upload. Authenticated by the job token.
/// </summary>
public static partial class ActionsCacheV1Api
{
    public const string Root = "/_apis/artifactcache";

    public static RouteGroupBuilder MapActionsCacheV1Api(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup(Root)
            .WithTags("ActionsCacheV1")
            .AddEndpointFilter<JobTokenGate>()
            .ProducesProblem(StatusCodes.Status401Unauthorized);

        api.MapGet("/cache", GetCacheEntryAsync)
            .WithName("ActionsCacheV1GetCacheEntry")
            .WithSummary("Look up comma-separated keys (primary first, then restore keys) of one version");
        api.MapGet("/caches", ListCachesAsync)
            .WithName("ActionsCacheV1ListCaches")
            .WithSummary("Entries with exactly this key visible to the job (the toolkit's miss diagnostics)");
        api.MapPost("/caches", ReserveCacheAsync)
            .WithName("ActionsCacheV1ReserveCache")
            .WithSummary("Reserve an entry in the job's ref; returns its cacheId");
        api.MapPatch("/caches/{cacheId:long}", UploadChunkAsync)
            .WithName("ActionsCacheV1UploadChunk")
            .WithSummary("Upload one chunk at the offset its Content-Range names")
            .Accepts<Stream>("application/octet-stream");
        api.MapPost("/caches/{cacheId:long}", CommitCacheAsync)
            .WithName("ActionsCacheV1CommitCache")
            .WithSummary("Commit the uploaded chunks: the total must equal size");
        return api;
    }

    public static async Task<Results<Ok<ArtifactCacheEntry>, NoContent, ProblemHttpResult>> GetCacheEntryAsync(
        string? keys, string? version, HttpContext http, CacheEntryService entries, CacheUseLog uses, CacheUrls urls, CancellationToken cancellationToken)
    {
        var all = (keys ?? "").Split(',');
        var primary = all[0];
        var restoreKeys = all.Skip(1).ToList();
        if (CacheKeyRules.CheckLookup(primary, restoreKeys, version, "keys", "keys") is { } errors) return CacheProblems.Invalid(errors);
        var job = http.JobToken();
        var hit = await entries.FindForRestoreAsync(job, primary, restoreKeys, version!, cancellationToken);
        await uses.RecordRestoreAsync(job, CacheUseLog.ActionsV1, primary, version!, hit, cancellationToken);
        CacheTelemetry.Lookup(CacheTelemetry.ActionsV1, hit?.SizeBytes);
        if (hit is null) return TypedResults.NoContent();
        return TypedResults.Ok(new ArtifactCacheEntry(hit.Key, hit.Scope, urls.Download(http.Request, hit.Id, job.JobId), hit.CommittedAt, hit.Version));
    }

    public static async Task<Results<Ok<ArtifactCacheList>, ProblemHttpResult>> ListCachesAsync(
        string? key, HttpContext http, CacheDbContext db, CacheEntryService entries, CancellationToken cancellationToken)
    {
        if (CacheKeyRules.CheckKey(key) is { } error) return CacheProblems.Invalid("key", error);
        var job = http.JobToken();
        var scopes = entries.ScopesVisibleTo(job).ToList();
        var found = await db.Entries.Where(e => e.Repository == job.Repository && scopes.Contains(e.Scope) && e.Key == key && e.State == CacheEntryState.Committed)
                .OrderByDescending(e => e.CommittedAt).Take(100).ToListAsync(cancellationToken);
        var list = found.Select(e => new ArtifactCacheEntry(e.Key, e.Scope, null, e.CommittedAt, e.Version)).ToList();
        return TypedResults.Ok(new ArtifactCacheList(list.Count, list));
    }

    public static async Task<Results<Created<ReserveCacheResponse>, ProblemHttpResult>> ReserveCacheAsync(
        ReserveCacheRequest request, HttpContext http, CacheEntryService entries, IOptions<CacheOptions> options, CancellationToken cancellationToken)
    {
        if (CacheKeyRules.CheckLookup(request.Key, [], request.Version) is { } errors) return CacheProblems.Invalid(errors);
        if (request.CacheSize < 0) return CacheProblems.Invalid("cacheSize", "must not be negative");
        var job = http.JobToken();
        var reserved = await entries.ReserveAsync(job, request.Key!, request.Version!, request.CacheSize, cancellationToken);
        return reserved.Outcome switch
        {
            ReserveOutcome.Reserved => TypedResults.Created($"{Root}/caches/{reserved.Entry!.Id}", new ReserveCacheResponse(reserved.Entry.Id)),
            ReserveOutcome.AlreadyExists => CacheProblems.Conflict($"An entry with key '{request.Key}' and this version already exists in {job.Ref}; entries are immutable."),
            ReserveOutcome.Busy => CacheProblems.Conflict($"Another job is creating the entry with key '{request.Key}' and this version."),
            // 400, not 413: the toolkit shows a 400's message as the reason it did not save.
            _ => CacheProblems.Problem(StatusCodes.Status400BadRequest, "Too large",
                $"cacheSize {request.CacheSize} exceeds the limit of {Math.Min(options.Value.MaxObjectBytes, options.Value.ScopeQuotaOf(job.Repository, job.Ref))} bytes; not saving.", "cacheSize", "resource_exhausted"),
        };
    }

    public static async Task<Results<NoContent, ProblemHttpResult>> UploadChunkAsync(
        long cacheId, HttpContext http, CacheEntryService entries, UploadStaging staging, IOptions<CacheOptions> options, CancellationToken cancellationToken)
    {
        if (!TryParseContentRange(http.Request.Headers.ContentRange.ToString(), out var start, out var end))
        {
            return CacheProblems.Invalid("Content-Range", "must be 'bytes {start}-{end}/*' with start <= end");
        }
        var limit = options.Value.MaxObjectBytes;
        if (end >= limit) return CacheProblems.TooLarge(limit);
        var job = http.JobToken();
        if (await entries.FindAsync(job.Repository, cacheId, cancellationToken) is not { } entry) return CacheProblems.NotFound($"No cache {cacheId} in this repository.");
        if (CacheEntryService.CheckWritable(entry, job.JobId) is { } refused) return CommitProblems.Of(new CommitResult(refused), "size");

        LiftBodyLimit(http);
        var length = end - start + 1;
        if (http.Request.ContentLength is { } announced && announced != length)
        {
            return CacheProblems.Invalid("Content-Range", $"names {length} bytes but Content-Length is {announced}");
        }
        return await staging.WriteRangeAsync(entry, start, length, http.Request.Body, cancellationToken)
            ? TypedResults.NoContent()
            : CacheProblems.Invalid("body", $"must be exactly the {length} bytes Content-Range names");
    }

    public static async Task<Results<NoContent, ProblemHttpResult>> CommitCacheAsync(
        long cacheId, CommitCacheRequest request, HttpContext http, CacheEntryService entries, CacheUseLog uses, CancellationToken cancellationToken)
    {
        if (request.Size < 0) return CacheProblems.Invalid("size", "must not be negative");
        if (request.Sha256 is { } sha && !BuildCache.BuildCacheAddress.IsSha256Hex(sha)) return CacheProblems.Invalid("sha256", "must be 64 lowercase hexadecimal characters");
        var job = http.JobToken();
        if (await entries.FindAsync(job.Repository, cacheId, cancellationToken) is not { } entry) return CacheProblems.NotFound($"No cache {cacheId} in this repository.");
        try
        {
            var committed = await entries.CommitAsync(job, entry, request.Size, request.Sha256, cancellationToken);
            if (committed.Outcome != CommitOutcome.Committed) return CommitProblems.Of(committed, "size");
            await uses.RecordSaveAsync(job, CacheUseLog.ActionsV1, committed.Entry!, cancellationToken);
            return TypedResults.NoContent();
        }
        catch (BlobStoreUnavailableException)
        {
            return CacheProblems.StorageUnavailable();
        }
    }

    /// <summary>Our limits replace Kestrel's 30 MB default (chunks are up to 128 MiB); the handlers enforce their own.</summary>
    internal static void LiftBodyLimit(HttpContext http)
    {
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodyLimit) bodyLimit.MaxRequestBodySize = null;
    }

    /// <summary>Parses <c>bytes {start}-{end}/{total|*}</c> (inclusive end).</summary>
    internal static bool TryParseContentRange(string header, out long start, out long end)
    {
        start = end = 0;
        var match = ContentRange().Match(header);
        return match.Success
            && long.TryParse(match.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out start)
            && long.TryParse(match.Groups[2].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out end)
            && start <= end;
    }

    [GeneratedRegex(@"^bytes (\d{1,18})-(\d{1,18})/(\d{1,18}|\*)$")]
    private static partial Regex ContentRange();
}

public sealed record ArtifactCacheEntry(string CacheKey, string Scope, string? ArchiveLocation, DateTimeOffset? CreationTime, string CacheVersion);

public sealed record ArtifactCacheList(int TotalCount, IReadOnlyList<ArtifactCacheEntry> ArtifactCaches);

public sealed record ReserveCacheRequest(string? Key, string? Version, long? CacheSize);

public sealed record ReserveCacheResponse(long CacheId);

/// <param name="Sha256">EphemeralCI's extension: when given, the upload must hash to it.</param>
public sealed record CommitCacheRequest(long Size, string? Sha256 = null);
