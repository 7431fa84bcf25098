using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Cache.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Apis;

/// <summary>Builds the absolute, signed blob URLs handed to clients.</summary>
public sealed class CacheUrls(SignedUrls signer, IBlobStore blobs, IOptions<CacheOptions> options)
{
    public const string BlobsRoute = "/cache/blobs";

    public string Upload(HttpRequest request, long entryId, Guid jobId) => Blob(request, entryId, signer.Sign(SignedUrlPurpose.Upload, entryId, jobId));

    public string Download(HttpRequest request, long entryId, Guid jobId) => Blob(request, entryId, signer.Sign(SignedUrlPurpose.Download, entryId, jobId));

    /// <summary>
    /// A presigned GET of the committed entry's object straight from the store, when <c>Cache:DirectDownloads</c> is on
    /// and the store can presign; otherwise null. Only for clients that check the SHA-256 themselves.
    /// </summary>
    public async Task<string?> DirectDownloadAsync(string? objectKey, CancellationToken cancellationToken)
    {
        if (!options.Value.DirectDownloads || blobs is not IDirectDownloadStore direct || objectKey is null) return null;
        try
        {
            return await direct.PresignGetAsync(objectKey, options.Value.DirectDownloadLifetime, cancellationToken);
        }
        catch (Exception e) when (e is BlobStoreUnavailableException or Amazon.Runtime.AmazonClientException or Amazon.Runtime.AmazonServiceException)
        {
            // The service URL still works; a direct URL is only an offer.
            return null;
        }
    }

    private string Blob(HttpRequest request, long entryId, string query)
    {
        var baseUrl = string.IsNullOrWhiteSpace(options.Value.PublicBaseUrl)
            ? $"{request.Scheme}://{request.Host}{request.PathBase}"
            : options.Value.PublicBaseUrl.TrimEnd('/');
        return $"{baseUrl}{BlobsRoute}/{entryId}?{query}";
    }
}
