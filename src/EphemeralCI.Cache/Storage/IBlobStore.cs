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

    /// <summary>Stores exactly <paramref name="length"/> bytes from <paramref name="content"/>, replacing any object under the key.</summary>
    Task PutAsync(string key, Stream content, long length, CancellationToken cancellationToken = default);

    /// <summary>Removes the object; no error when there is none.</summary>
    Task DeleteAsync(string key, CancellationToken cancellationToken = default);
}

public sealed record BlobInfo(long Length, string? ETag);

/// <summary>The store cannot be reached or refused the operation; the API answers 503, not 500.</summary>
public sealed class BlobStoreUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
