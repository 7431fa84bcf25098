using EphemeralCI.Cache.Entries;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Apis;

/// <summary>Builds the absolute, signed blob URLs handed to clients.</summary>
public sealed class CacheUrls(SignedUrls signer, IOptions<CacheOptions> options)
{
    public const string BlobsRoute = "/cache/blobs";

    public string Upload(HttpRequest request, long entryId, Guid jobId) => Blob(request, entryId, signer.Sign(SignedUrlPurpose.Upload, entryId, jobId));

    public string Download(HttpRequest request, long entryId, Guid jobId) => Blob(request, entryId, signer.Sign(SignedUrlPurpose.Download, entryId, jobId));

    private string Blob(HttpRequest request, long entryId, string query)
    {
        var baseUrl = string.IsNullOrWhiteSpace(options.Value.PublicBaseUrl)
            ? $"{request.Scheme}://{request.Host}{request.PathBase}"
            : options.Value.PublicBaseUrl.TrimEnd('/');
        return $"{baseUrl}{BlobsRoute}/{entryId}?{query}";
    }
}
