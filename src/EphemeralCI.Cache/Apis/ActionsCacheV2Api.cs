using EphemeralCI.Cache.Telemetry;
using System.Text.Json.Serialization;
using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Storage;
using EphemeralCI.JobTokens;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace EphemeralCI.Cache.Apis;

/// <summary>
/// The GitHub Actions cache service v2 (Twirp, JSON): what <c>@actions/cache</c> 4.x calls when
/// <c>ACTIONS_CACHE_SERVICE_V2</c> is set, at <c>{ACTIONS_RESULTS_URL}/twirp/github.actions.results.api.v1.CacheService/…</c>,
/// with <c>ACTIONS_RUNTIME_TOKEN</c> (our job token) as bearer. Uploads and downloads then go to the signed
/// blob URLs of <see cref="BlobTransferApi"/>. Twirp fixes the path at the root, so this group cannot move under a prefix.
/// </summary>
public static class ActionsCacheV2Api
{
    public const string ServicePath = "/twirp/github.actions.results.api.v1.CacheService";

    public static RouteGroupBuilder MapActionsCacheV2Api(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup(ServicePath)
            .WithTags("ActionsCacheV2")
            .AddEndpointFilter<JobTokenGate>()
            .ProducesProblem(StatusCodes.Status401Unauthorized);

        api.MapPost("/CreateCacheEntry", CreateCacheEntryAsync)
            .WithName("ActionsCacheV2CreateCacheEntry")
            .WithSummary("Reserve an entry (key + version) in the job's ref and get a signed upload URL");
        api.MapPost("/FinalizeCacheEntryUpload", FinalizeCacheEntryUploadAsync)
            .WithName("ActionsCacheV2FinalizeCacheEntryUpload")
            .WithSummary("Commit the uploaded archive: size checked, SHA-256 recorded, entry immutable from now on");
        api.MapPost("/GetCacheEntryDownloadURL", GetCacheEntryDownloadUrlAsync)
            .WithName("ActionsCacheV2GetCacheEntryDownloadURL")
            .WithSummary("Look up key then restore keys (own ref, then default branch); a signed download URL on a hit");
        return api;
    }

    public static async Task<Results<Ok<CreateCacheEntryResponse>, ProblemHttpResult>> CreateCacheEntryAsync(
        CreateCacheEntryRequest request, HttpContext http, CacheEntryService entries, CacheUrls urls, CancellationToken cancellationToken)
    {
        if (CacheKeyRules.CheckLookup(request.Key, [], request.Version) is { } errors) return CacheProblems.Invalid(errors);
        var job = http.JobToken();
        try
        {
            var reserved = await entries.ReserveAsync(job, request.Key!, request.Version!, null, cancellationToken);
            return reserved.Outcome switch
            {
                ReserveOutcome.Reserved => TypedResults.Ok(new CreateCacheEntryResponse(true, urls.Upload(http.Request, reserved.Entry!.Id, job.JobId), "")),
                ReserveOutcome.AlreadyExists => CacheProblems.Conflict($"An entry with key '{request.Key}' and this version already exists in {job.Ref}; entries are immutable."),
                ReserveOutcome.Busy => CacheProblems.Conflict($"Another job is creating the entry with key '{request.Key}' and this version."),
                _ => CacheProblems.TooLarge(0),
            };
        }
        catch (BlobStoreUnavailableException)
        {
            return CacheProblems.StorageUnavailable();
        }
    }

    public static async Task<Results<Ok<FinalizeCacheEntryUploadResponse>, ProblemHttpResult>> FinalizeCacheEntryUploadAsync(
        FinalizeCacheEntryUploadRequest request, HttpContext http, CacheEntryService entries, CacheUseLog uses, CancellationToken cancellationToken)
    {
        if (CacheKeyRules.CheckLookup(request.Key, [], request.Version) is { } errors) return CacheProblems.Invalid(errors);
        if (request.SizeBytes < 0) return CacheProblems.Invalid("size_bytes", "must not be negative");
        if (request.Sha256 is { } sha && !BuildCache.BuildCacheAddress.IsSha256Hex(sha)) return CacheProblems.Invalid("sha256", "must be 64 lowercase hexadecimal characters");
        var job = http.JobToken();
        if (await entries.FindReservationAsync(job, request.Key!, request.Version!, cancellationToken) is not { } entry)
        {
            return CacheProblems.NotFound($"No reservation for key '{request.Key}' and this version in {job.Ref}: call CreateCacheEntry first.");
        }
        try
        {
            var committed = await entries.CommitAsync(job, entry, request.SizeBytes, request.Sha256, cancellationToken);
            if (committed.Outcome != CommitOutcome.Committed) return CommitProblems.Of(committed, "size_bytes");
            await uses.RecordSaveAsync(job, CacheUseLog.ActionsV2, committed.Entry!, cancellationToken);
            return TypedResults.Ok(new FinalizeCacheEntryUploadResponse(true, committed.Entry!.Id, ""));
        }
        catch (BlobStoreUnavailableException)
        {
            return CacheProblems.StorageUnavailable();
        }
    }

    public static async Task<Results<Ok<GetCacheEntryDownloadUrlResponse>, ProblemHttpResult>> GetCacheEntryDownloadUrlAsync(
        GetCacheEntryDownloadUrlRequest request, HttpContext http, CacheEntryService entries, CacheUseLog uses, CacheUrls urls, CancellationToken cancellationToken)
    {
        var restoreKeys = request.RestoreKeys ?? [];
        if (CacheKeyRules.CheckLookup(request.Key, restoreKeys, request.Version) is { } errors) return CacheProblems.Invalid(errors);
        var job = http.JobToken();
        var hit = await entries.FindForRestoreAsync(job, request.Key!, restoreKeys, request.Version!, cancellationToken);
        await uses.RecordRestoreAsync(job, CacheUseLog.ActionsV2, request.Key!, request.Version!, hit, cancellationToken);
        CacheTelemetry.Lookup(CacheTelemetry.ActionsV2, hit?.SizeBytes);
        // A miss is a normal answer (ok: false), not an error: the toolkit treats it as "no cache".
        if (hit is null) return TypedResults.Ok(new GetCacheEntryDownloadUrlResponse(false, "", ""));
        return TypedResults.Ok(new GetCacheEntryDownloadUrlResponse(true, urls.Download(http.Request, hit.Id, job.JobId), hit.Key)
        {
            Sha256 = hit.Sha256,
            SizeBytes = hit.SizeBytes,
            Scope = hit.Scope,
            DirectDownloadUrl = await urls.DirectDownloadAsync(hit.ObjectKey, cancellationToken),
        });
    }
}

/// <summary>Problem details for a refused commit, shared by both protocol versions.</summary>
internal static class CommitProblems
{
    public static ProblemHttpResult Of(CommitResult result, string sizeField) => result.Outcome switch
    {
        CommitOutcome.NotFound => CacheProblems.NotFound("No such entry in this repository."),
        CommitOutcome.NotYours => CacheProblems.Forbidden("The entry is reserved by another job; only it may upload and commit."),
        CommitOutcome.AlreadyCommitted => CacheProblems.Conflict("The entry is already committed; entries are immutable."),
        CommitOutcome.NothingUploaded => CacheProblems.Problem(StatusCodes.Status409Conflict, "Conflict", result.Detail!, "body", "failed_precondition"),
        CommitOutcome.SizeMismatch => CacheProblems.Invalid(sizeField, result.Detail!),
        CommitOutcome.HashMismatch => CacheProblems.Invalid("sha256", result.Detail!),
        _ => throw new ArgumentOutOfRangeException(nameof(result)),
    };
}

// Twirp JSON uses the proto field names; int64 travels as a JSON string (proto3 JSON mapping).

public sealed record CreateCacheEntryRequest(
    [property: JsonPropertyName("key")] string? Key,
    [property: JsonPropertyName("version")] string? Version);

public sealed record CreateCacheEntryResponse(
    [property: JsonPropertyName("ok")] bool Ok,
    [property: JsonPropertyName("signed_upload_url")] string SignedUploadUrl,
    [property: JsonPropertyName("message")] string Message);

/// <param name="Sha256">EphemeralCI's extension (ignored by GitHub's clients): when given, the upload must hash to it.</param>
public sealed record FinalizeCacheEntryUploadRequest(
    [property: JsonPropertyName("key")] string? Key,
    [property: JsonPropertyName("version")] string? Version,
    [property: JsonPropertyName("size_bytes"), JsonNumberHandling(JsonNumberHandling.AllowReadingFromString)] long SizeBytes,
    [property: JsonPropertyName("sha256")] string? Sha256 = null);

public sealed record FinalizeCacheEntryUploadResponse(
    [property: JsonPropertyName("ok")] bool Ok,
    [property: JsonPropertyName("entry_id"), JsonNumberHandling(JsonNumberHandling.WriteAsString)] long EntryId,
    [property: JsonPropertyName("message")] string Message);

public sealed record GetCacheEntryDownloadUrlRequest(
    [property: JsonPropertyName("key")] string? Key,
    [property: JsonPropertyName("restore_keys")] IReadOnlyList<string>? RestoreKeys,
    [property: JsonPropertyName("version")] string? Version);

/// <summary>
/// The toolkit's three fields, plus EphemeralCI's (which the toolkit's generated client ignores as unknown fields):
/// the archive's SHA-256 and size, so a client downloading in ranges (or directly) can verify what it assembled, and
/// with <c>Cache:DirectDownloads</c> a presigned S3 URL for clients that verify.
/// </summary>
public sealed record GetCacheEntryDownloadUrlResponse(
    [property: JsonPropertyName("ok")] bool Ok,
    [property: JsonPropertyName("signed_download_url")] string SignedDownloadUrl,
    [property: JsonPropertyName("matched_key")] string MatchedKey)
{
    [JsonPropertyName("sha256"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Sha256 { get; init; }

    [JsonPropertyName("size_bytes"), JsonNumberHandling(JsonNumberHandling.WriteAsString), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? SizeBytes { get; init; }

    [JsonPropertyName("direct_download_url"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? DirectDownloadUrl { get; init; }

    /// <summary>The ref whose entries the hit is from: the job's own, or the default branch's it may read (for the job's attestation).</summary>
    [JsonPropertyName("scope"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Scope { get; init; }
}
