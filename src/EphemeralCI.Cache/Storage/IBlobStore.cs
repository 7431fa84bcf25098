namespace EphemeralCI.Cache.Storage;

/// <summary>
/// Where cache objects live. <see cref="S3BlobStore"/> for MinIO or any S3 API; the embedded
/// all-in-one server can register a filesystem store before calling <c>AddCache</c>.
/// Keys are opaque, '/'-separated, and already scoped by the caller (see <c>CacheScope</c>).
/// </summary>
public interface IBlobStore
{
    /// <summary>Size and tag of an object, or null when there is none.</summary>
    Task<BlobInfo?> StatAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Copies the whole object to <paramref name="destination"/>; false when there is none.</summary>
    Task<bool> CopyToAsync(string key, Stream destination, CancellationToken cancellationToken = default);

    /// <summary>
    /// Copies <paramref name="length"/> bytes from <paramref name="offset"/> (a byte range; the caller checked it lies
    /// inside the object) to <paramref name="destination"/>; false when there is no object.
    /// </summary>
    Task<bool> CopyRangeToAsync(string key, long offset, long length, Stream destination, CancellationToken cancellationToken = default);

    /// <summary>Stores exactly <paramref name="length"/> bytes from <paramref name="content"/>, replacing any object under the key.</summary>
    Task PutAsync(string key, Stream content, long length, CancellationToken cancellationToken = default);

    /// <summary>Removes the object; no error when there is none.</summary>
    Task DeleteAsync(string key, CancellationToken cancellationToken = default);
}

public sealed record BlobInfo(long Length, string? ETag);

/// <summary>
/// A store that builds an object from parts uploaded separately (S3 multipart upload), so the cache can forward
/// each uploaded block as it arrives instead of assembling the archive first. Parts must be at least
/// <see cref="MinPartBytes"/> except the last; the object is the listed parts in ascending part-number order.
/// </summary>
public interface IMultipartBlobStore
{
    /// <summary>S3's lower bound for every part but the last (5 MiB).</summary>
    long MinPartBytes { get; }

    /// <summary>Highest part number S3 accepts (10 000).</summary>
    int MaxPartNumber { get; }

    /// <summary>Starts a multipart upload of <paramref name="key"/>; returns its upload id.</summary>
    Task<string> StartMultipartAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Uploads exactly <paramref name="length"/> bytes as part <paramref name="partNumber"/> (replacing an earlier one); returns its ETag.</summary>
    Task<string> UploadPartAsync(string key, string uploadId, int partNumber, Stream content, long length, CancellationToken cancellationToken = default);

    /// <summary>
    /// Makes the object from <paramref name="parts"/> (ascending part numbers; others are discarded). Throws
    /// <see cref="MultipartRejectedException"/> when the store refuses the list (a part too small, an ETag that no longer matches).
    /// </summary>
    Task CompleteMultipartAsync(string key, string uploadId, IReadOnlyList<BlobPart> parts, CancellationToken cancellationToken = default);

    /// <summary>Discards the upload and its parts; no error when it is already gone.</summary>
    Task AbortMultipartAsync(string key, string uploadId, CancellationToken cancellationToken = default);
}

public readonly record struct BlobPart(int PartNumber, string ETag);

/// <summary>A store that can hand out a short-lived URL a client downloads the object from directly (presigned S3 GET).</summary>
public interface IDirectDownloadStore
{
    Task<string> PresignGetAsync(string key, TimeSpan lifetime, CancellationToken cancellationToken = default);
}

/// <summary>The store refused to complete a multipart upload from the parts given; the caller assembles the object another way.</summary>
public sealed class MultipartRejectedException(string message) : Exception(message);

/// <summary>The store cannot be reached or refused the operation; the API answers 503, not 500.</summary>
public sealed class BlobStoreUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
