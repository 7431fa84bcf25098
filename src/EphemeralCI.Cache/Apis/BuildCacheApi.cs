using EphemeralCI.Cache.Telemetry;
using EphemeralCI.JobTokens;
using EphemeralCI.Cache.BuildCache;
using EphemeralCI.Cache.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Apis;

/// <summary>
/// The plain HTTP remote build-cache protocol with Bazel's layout (<c>/cache/ac/{sha256}</c>,
/// <c>/cache/cas/{sha256}</c>), as spoken by Bazel (<c>--remote_cache=https://host/cache
/// --remote_header=Authorization=Bearer …</c>), ccache (<c>layout=bazel</c>) and similar clients.
/// Every entry belongs to the repository and ref of the job token that wrote it; a job reads its own ref's and the
/// default branch's entries (<see cref="BuildCacheStore"/>). Entries are immutable; action results are written only by trusted refs.
/// </summary>
public static class BuildCacheApi
{
    private const string EntryRoute = "/{kind}/{hash}";
    private const string OctetStream = "application/octet-stream";

    public static RouteGroupBuilder MapBuildCacheApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/cache")
            .WithTags("BuildCache")
            .AddEndpointFilter<JobTokenGate>()
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesValidationProblem();

        api.MapGet(EntryRoute, GetAsync)
            .WithName("GetBuildCacheEntry")
            .WithSummary("Download an action-cache or CAS entry of the job's ref, else of the default branch");

        api.MapMethods(EntryRoute, [HttpMethods.Head], HeadAsync)
            .WithName("HeadBuildCacheEntry")
            .WithSummary("Check an entry exists and get its size (Content-Length)");

        api.MapPut(EntryRoute, PutAsync)
            .WithName("PutBuildCacheEntry")
            .WithSummary("Upload an entry to the job's ref; CAS bodies must hash to their key, entries are immutable, action results only from trusted refs")
            // Any media type, or none: Gradle sends application/vnd.gradle.build-cache-artifact.v1, curl scripts
            // text/plain or nothing, Bazel and ccache application/octet-stream. The body is bytes whatever it is called.
            .Accepts<Stream>(isOptional: true, OctetStream, "*/*")
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status409Conflict);

        return api;
    }

    public static async Task<Results<PushStreamHttpResult, ProblemHttpResult, ValidationProblem>> GetAsync(
        string kind, string hash, HttpContext http, BuildCacheStore store, IBlobStore blobs, CancellationToken cancellationToken)
    {
        if (!BuildCacheAddress.TryParse(kind, hash, out var address, out var errors)) return TypedResults.ValidationProblem(errors);
        try
        {
            if (await store.FindAsync(http.JobToken(), address, cancellationToken) is not { ObjectKey: { } key }) return Miss(address);
            // Stat, not the recorded size: an object evicted since the lookup is a 404, never a short body.
            if (await blobs.StatAsync(key, cancellationToken) is not { } blob) return Miss(address);
            CacheTelemetry.Lookup(CacheTelemetry.BuildCache, blob.Length);
            http.Response.ContentLength = blob.Length;
            // Streams S3 straight into the response; a GiB never sits in memory.
            return TypedResults.Stream(body => blobs.CopyToAsync(key, body, cancellationToken), OctetStream);
        }
        catch (BlobStoreUnavailableException e)
        {
            return StorageUnavailable(http, e);
        }
    }

    public static async Task<Results<Ok, ProblemHttpResult, ValidationProblem>> HeadAsync(
        string kind, string hash, HttpContext http, BuildCacheStore store, CancellationToken cancellationToken)
    {
        if (!BuildCacheAddress.TryParse(kind, hash, out var address, out var errors)) return TypedResults.ValidationProblem(errors);
        if (await store.FindAsync(http.JobToken(), address, cancellationToken) is not { } hit) return NotFound(address);
        http.Response.ContentLength = hit.SizeBytes;
        http.Response.ContentType = OctetStream;
        return TypedResults.Ok();
    }

    public static async Task<Results<NoContent, ProblemHttpResult, ValidationProblem>> PutAsync(
        string kind, string hash, HttpContext http, BuildCacheStore store, IOptions<CacheOptions> options, CancellationToken cancellationToken)
    {
        if (!BuildCacheAddress.TryParse(kind, hash, out var address, out var errors)) return TypedResults.ValidationProblem(errors);
        var job = http.JobToken();
        // Before the body is read: an untrusted ref's action result is refused however it is sent.
        if (!store.MayWrite(job, address)) return UntrustedActionResult(job);
        var limit = store.LimitFor(job);
        if (http.Request.ContentLength > limit) return TooLarge(limit);

        // Our own limit replaces the server's (Kestrel's 30 MB default would cut off real entries
        // with a bare 413); UploadSpool enforces it while reading, also for chunked bodies.
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodyLimit)
        {
            bodyLimit.MaxRequestBodySize = null;
        }

        await using var spool = await UploadSpool.CreateAsync(http.Request.Body, options.Value.SpoolDirectory, limit, cancellationToken);
        if (spool is null) return TooLarge(limit);

        if (address.Kind == BuildCacheKind.ContentAddressable && spool.Sha256 != address.Hash)
        {
            return TypedResults.ValidationProblem(
                new Dictionary<string, string[]> { ["body"] = [$"SHA-256 of the body is {spool.Sha256}, not the hash in the path {address.Hash}"] },
                title: "The CAS entry does not match its hash; nothing was stored.");
        }

        try
        {
            return await store.PutAsync(job, address, spool, cancellationToken) switch
            {
                BuildCachePutOutcome.Stored or BuildCachePutOutcome.Unchanged => TypedResults.NoContent(),
                BuildCachePutOutcome.Conflict => CacheProblems.Problem(StatusCodes.Status409Conflict, "Conflict",
                    $"The {address.Kind.ToPathSegment()} entry {address.Hash} of {job.Ref} already holds other bytes; entries are immutable, nothing was stored.",
                    field: "body", twirpCode: "already_exists"),
                BuildCachePutOutcome.UntrustedActionResult => UntrustedActionResult(job),
                _ => TooLarge(limit),
            };
        }
        catch (BlobStoreUnavailableException e)
        {
            return StorageUnavailable(http, e);
        }
    }

    private static ProblemHttpResult UntrustedActionResult(JobTokenClaims job) => CacheProblems.Problem(StatusCodes.Status403Forbidden, "Forbidden",
        $"Jobs on {job.Ref} may read action results but not write them: only refs in {CacheOptions.Section}:BuildCache:TrustedRefs (by default the default branch) do. Content-addressed (/cas) entries are accepted.",
        field: "kind", twirpCode: "permission_denied");

    private static ProblemHttpResult Miss(BuildCacheAddress address)
    {
        CacheTelemetry.Lookup(CacheTelemetry.BuildCache, null);
        return NotFound(address);
    }

    private static ProblemHttpResult NotFound(BuildCacheAddress address) => TypedResults.Problem(
        $"No {address.Kind.ToPathSegment()} entry {address.Hash} in this ref's or the default branch's cache.",
        statusCode: StatusCodes.Status404NotFound, title: "Not Found");

    private static ProblemHttpResult TooLarge(long limit) => TypedResults.Problem(
        $"The body exceeds the largest entry this cache stores ({limit} bytes, setting {CacheOptions.Section}:MaxObjectBytes); nothing was stored.",
        statusCode: StatusCodes.Status413PayloadTooLarge, title: "Payload Too Large",
        extensions: new Dictionary<string, object?> { ["field"] = "body", ["limit"] = limit });

    private static ProblemHttpResult StorageUnavailable(HttpContext http, BlobStoreUnavailableException e)
    {
        http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(BuildCacheApi)).LogError(e, "Cache storage unavailable");
        return TypedResults.Problem("The cache's object storage did not answer; retry later.",
            statusCode: StatusCodes.Status503ServiceUnavailable, title: "Service Unavailable");
    }
}
