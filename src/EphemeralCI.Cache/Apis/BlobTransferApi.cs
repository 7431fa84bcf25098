using System.Xml;
using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Cache.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Apis;

/// <summary>
/// The data path behind the signed URLs: uploads speak the Azure Blob block-blob calls the toolkit's
/// Azure SDK makes (Put Blob; Put Block <c>?comp=block&amp;blockid=</c>; Put Block List <c>?comp=blocklist</c>),
/// downloads are a GET of the whole archive (what the toolkit's downloader does for a non-Azure host), checked
/// against the SHA-256 recorded at commit while it streams, or of one byte range (<c>Range: bytes=a-b</c>, 206) for
/// parallel and resumed downloads. A range cannot be checked on its own, so every download response carries the
/// whole archive's SHA-256 as <c>Repr-Digest</c> (RFC 9530): a client that asks for ranges verifies the assembled
/// file itself, as the runner agent does before it extracts anything. A client that verifies the whole archive
/// anyway says so (<see cref="ClientVerifiesHeader"/>) and spares the cache a second SHA-256 pass over every
/// byte; it falls back to the checked GET (which quarantines a corrupted entry) when its own check fails. No job token here: the URL's HMAC is the credential.
/// </summary>
public static partial class BlobTransferApi
{
    private const string OctetStream = "application/octet-stream";

    /// <summary>
    /// Sent by a client that checks the whole archive against <c>Repr-Digest</c> itself (the runner agent): the
    /// whole-archive GET then streams unchecked. Explicit, so no other client (a resuming curl, a download manager
    /// asking for <c>bytes=0-</c>) ever loses the cache's check by accident.
    /// </summary>
    public const string ClientVerifiesHeader = "EphemeralCI-Client-Verifies";

    public static RouteGroupBuilder MapBlobTransferApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup(CacheUrls.BlobsRoute).WithTags("CacheBlobs");

        api.MapPut("/{entryId:long}", UploadAsync)
            .WithName("UploadCacheBlob")
            .WithSummary("Azure block-blob upload to a reserved entry (Put Blob, Put Block, Put Block List); signed URL");
        // No Accepts<…>(content type) here: routing would answer 415 to Put Block List's application/xml.
        api.MapGet("/{entryId:long}", DownloadAsync)
            .WithName("DownloadCacheBlob")
            .WithSummary("Download a committed entry's archive, verified against its SHA-256; signed URL");
        return api;
    }

    public static async Task<Results<Created, ProblemHttpResult>> UploadAsync(
        long entryId, string? comp, string? blockid, string? job, string? exp, string? sig,
        HttpContext http, SignedUrls signer, CacheEntryService entries, UploadStaging staging, IOptions<CacheOptions> options, TimeProvider clock, CancellationToken cancellationToken)
    {
        if (Refuse(signer.Verify(SignedUrlPurpose.Upload, entryId, job, exp, sig)) is { } refused) return refused;
        if (await entries.FindAsync(entryId, cancellationToken) is not { } entry) return CacheProblems.NotFound($"No reservation {entryId}.");
        // The URL was signed for the job that reserved the entry; if the reservation passed to another job, the URL is dead.
        if (CacheEntryService.CheckWritable(entry, Guid.ParseExact(job!, "N")) is { } notWritable) return CommitProblems.Of(new CommitResult(notWritable), "body");

        // The Azure SDK's optional CRC64 "structured message" framing would be stored as if it were the archive.
        if (http.Request.Headers.ContainsKey("x-ms-structured-body"))
        {
            return CacheProblems.Invalid("x-ms-structured-body", "structured message uploads are not supported; upload the plain archive");
        }
        ActionsCacheV1Api.LiftBodyLimit(http);
        var limit = Math.Min(options.Value.MaxObjectBytes, options.Value.ScopeQuotaOf(entry.Repository, entry.Scope));
        if (http.Request.ContentLength > limit) return CacheProblems.TooLarge(limit);
        switch (comp)
        {
            case null or "":
                if (!await staging.WriteWholeAsync(entryId, http.Request.Body, limit, cancellationToken)) return CacheProblems.TooLarge(limit);
                break;
            case "block":
                if (DecodeBlockId(blockid) is not { } id) return CacheProblems.Invalid("blockid", $"must be base64 of 1-{UploadStaging.MaxBlockIdBytes} bytes");
                if (!await staging.WriteBlockAsync(entry, id, http.Request.Body, http.Request.ContentLength, limit, cancellationToken)) return CacheProblems.TooLarge(limit);
                break;
            case "blocklist":
                if (await ReadBlockListAsync(http.Request.Body, cancellationToken) is not { } ids) return CacheProblems.Invalid("body", "must be an XML <BlockList> of base64 block ids");
                var missing = await staging.CommitBlocksAsync(entryId, ids, limit, cancellationToken);
                if (missing.Count > 0) return CacheProblems.Invalid("body", $"blocks never uploaded or over the size limit: {string.Join(", ", missing.Take(5))}");
                break;
            default:
                return CacheProblems.Invalid("comp", "must be absent (Put Blob), 'block' or 'blocklist'");
        }
        // What the Azure SDK reads from a successful write.
        var now = clock.GetUtcNow();
        http.Response.Headers.ETag = $"\"0x{entryId:X}{now.UtcTicks:X}\"";
        http.Response.Headers.LastModified = now.ToString("R");
        http.Response.Headers["x-ms-request-id"] = http.TraceIdentifier;
        http.Response.Headers["x-ms-version"] = http.Request.Headers["x-ms-version"].ToString() is { Length: > 0 } v ? v : "2021-12-02";
        http.Response.Headers["x-ms-request-server-encrypted"] = "false";
        return TypedResults.Created();
    }

    public static async Task<Results<PushStreamHttpResult, ProblemHttpResult>> DownloadAsync(
        long entryId, string? job, string? exp, string? sig,
        HttpContext http, SignedUrls signer, CacheEntryService entries, IBlobStore blobs, CancellationToken cancellationToken)
    {
        if (Refuse(signer.Verify(SignedUrlPurpose.Download, entryId, job, exp, sig)) is { } refused) return refused;
        if (await entries.FindAsync(entryId, cancellationToken) is not { State: CacheEntryState.Committed, ObjectKey: { } objectKey, Sha256: { } sha256 } entry)
        {
            return CacheProblems.NotFound($"No committed entry {entryId} (deleted, evicted or quarantined).");
        }
        try
        {
            var stat = await blobs.StatAsync(objectKey, cancellationToken);
            if (stat is null || stat.Length != entry.SizeBytes)
            {
                var reason = stat is null ? "its object is missing" : $"its object holds {stat.Length} bytes, not the {entry.SizeBytes} committed";
                await entries.QuarantineAsync(entry, reason, cancellationToken);
                return IntegrityFailure(entryId, reason);
            }
        }
        catch (BlobStoreUnavailableException)
        {
            return CacheProblems.StorageUnavailable();
        }

        http.Response.Headers.AcceptRanges = "bytes";
        http.Response.Headers["Repr-Digest"] = ReprDigest(sha256);
        switch (RequestedRange(http.Request, entry.SizeBytes))
        {
            case { From: < 0 }:
                http.Response.Headers.ContentRange = $"bytes */{entry.SizeBytes}";
                return CacheProblems.Problem(StatusCodes.Status416RangeNotSatisfiable, "Range not satisfiable",
                    $"The archive holds {entry.SizeBytes} bytes; ask for a range inside it.", "Range");
            case { From: var from, Length: var length } when length != entry.SizeBytes:
                http.Response.ContentLength = length;
                http.Response.Headers.ContentRange = $"bytes {from}-{from + length - 1}/{entry.SizeBytes}";
                return TypedResults.Stream(async body =>
                {
                    http.Response.StatusCode = StatusCodes.Status206PartialContent;
                    // Unverifiable on its own: the client checks the whole file against Repr-Digest.
                    if (!await blobs.CopyRangeToAsync(objectKey, from, length, body, cancellationToken)) http.Abort();
                }, OctetStream);
        }

        http.Response.ContentLength = entry.SizeBytes;
        if (http.Request.Headers[ClientVerifiesHeader] == "sha-256")
        {
            return TypedResults.Stream(async body =>
            {
                if (!await blobs.CopyToAsync(objectKey, body, cancellationToken)) http.Abort();
            }, OctetStream);
        }
        return TypedResults.Stream(async body =>
        {
            // Headers first, whatever the copy buffers: a failed check below must leave the client a short body against
            // Content-Length (an error it cannot mistake for the archive), not a reset before any status line.
            await body.FlushAsync(cancellationToken);
            await using var checking = new HashCheckingStream(body, sha256, entry.SizeBytes);
            var found = await blobs.CopyToAsync(objectKey, checking, cancellationToken);
            if (found && await checking.CompleteAsync(cancellationToken)) return;
            // Headers are gone; the client gets a short body it must reject (Content-Length), and the entry is never served again.
            await entries.QuarantineAsync(entry, "its object does not hash to the SHA-256 recorded at commit", CancellationToken.None);
            http.Abort();
        }, OctetStream);
    }

    /// <summary>RFC 9530 <c>Repr-Digest</c> of the whole archive: <c>sha-256=:base64:</c>.</summary>
    internal static string ReprDigest(string sha256Hex) => $"sha-256=:{Convert.ToBase64String(Convert.FromHexString(sha256Hex))}:";

    internal readonly record struct RangeRequest(long From, long Length)
    {
        public static readonly RangeRequest Unsatisfiable = new(-1, -1);
    }

    /// <summary>
    /// One byte range of <paramref name="size"/> bytes: <c>bytes=a-b</c>, <c>bytes=a-</c> or <c>bytes=-n</c>. No Range header,
    /// another unit or several ranges mean the whole archive (which RFC 9110 allows a server to answer instead).
    /// </summary>
    internal static RangeRequest RequestedRange(HttpRequest request, long size)
    {
        var whole = new RangeRequest(0, size);
        var header = request.GetTypedHeaders().Range;
        if (header is null || !string.Equals(header.Unit.Value, "bytes", StringComparison.OrdinalIgnoreCase) || header.Ranges.Count != 1) return whole;
        var range = header.Ranges.Single();
        if (range.From is { } from)
        {
            if (from >= size) return RangeRequest.Unsatisfiable;
            var to = Math.Min(range.To ?? size - 1, size - 1);
            return to < from ? whole : new RangeRequest(from, to - from + 1);
        }
        if (range.To is { } suffix)
        {
            if (suffix == 0) return RangeRequest.Unsatisfiable;
            var length = Math.Min(suffix, size);
            return new RangeRequest(size - length, length);
        }
        return whole;
    }

    private static ProblemHttpResult IntegrityFailure(long entryId, string reason) => CacheProblems.Problem(StatusCodes.Status502BadGateway, "Corrupted cache entry",
        $"Entry {entryId} failed its integrity check ({reason}); it was quarantined and will not be served. Save it again.", twirpCode: "data_loss");

    private static ProblemHttpResult? Refuse(SignedUrlCheck check) => check.Status switch
    {
        SignedUrlStatus.Valid => null,
        SignedUrlStatus.Expired => CacheProblems.Forbidden("The signed URL has expired; ask the cache service for a new one."),
        SignedUrlStatus.BadSignature => CacheProblems.Forbidden("The URL's signature does not match; it was altered or not issued by this cache."),
        _ => CacheProblems.Problem(StatusCodes.Status403Forbidden, "Forbidden", "This URL needs the job, exp and sig parameters the cache service signed.", "sig"),
    };

    internal static byte[]? DecodeBlockId(string? blockId)
    {
        if (string.IsNullOrEmpty(blockId)) return null;
        var bytes = new byte[blockId.Length];
        return Convert.TryFromBase64String(blockId, bytes, out var written) && written is > 0 and <= UploadStaging.MaxBlockIdBytes ? bytes[..written] : null;
    }

    /// <summary>Reads <c>&lt;BlockList&gt;&lt;Latest|Committed|Uncommitted&gt;id&lt;/…&gt;…&lt;/BlockList&gt;</c>; null when malformed. No DTDs, bounded size.</summary>
    internal static async Task<IReadOnlyList<byte[]>?> ReadBlockListAsync(Stream body, CancellationToken cancellationToken)
    {
        var settings = new XmlReaderSettings { Async = true, DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null, MaxCharactersInDocument = 16 * 1024 * 1024 };
        var ids = new List<byte[]>();
        try
        {
            using var reader = XmlReader.Create(body, settings);
            await reader.MoveToContentAsync();
            if (reader.LocalName != "BlockList" || reader.IsEmptyElement) return null;
            await reader.ReadAsync();
            while (!reader.EOF)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (reader.NodeType != XmlNodeType.Element)
                {
                    await reader.ReadAsync();
                    continue;
                }
                if (reader.LocalName is not ("Latest" or "Committed" or "Uncommitted")) return null;
                // Leaves the reader on the node after the element, so no extra Read here.
                if (DecodeBlockId(await reader.ReadElementContentAsStringAsync()) is not { } id) return null;
                ids.Add(id);
            }
        }
        catch (XmlException)
        {
            return null;
        }
        return ids.Count > 0 ? ids : null;
    }
}
