namespace EphemeralCI.RunnerAgent.Caching;

/// <summary>How a request to the step cache endpoint is forwarded: with the job token, or as it is (signed blob URLs).</summary>
public enum StepCacheRouteKind
{
    /// <summary>Actions cache v2 Twirp calls and v1 REST calls: JSON whose signed URLs are rewritten to the endpoint.</summary>
    ActionsApi,
    /// <summary>The signed blob URLs those calls hand out: the signature is the credential, no token is added.</summary>
    SignedBlob,
    /// <summary>The Bazel-layout build cache (<c>/cache/ac</c>, <c>/cache/cas</c>): bytes, with the job token.</summary>
    BuildCache,
}

/// <summary>
/// The only requests the step cache endpoint forwards: the cache protocols the tools in a job speak, by method and path.
/// Everything else — the cache's admin API, the intake, the secrets broker, any path that is not spelled plainly — is
/// refused before anything leaves the runner.
/// </summary>
public static class StepCacheRoutes
{
    public const string TwirpService = "/twirp/github.actions.results.api.v1.CacheService/";
    public const string V1Root = "/_apis/artifactcache/";
    public const string BlobRoot = "/cache/blobs/";
    public const string BuildCacheRoot = "/cache";

    private static readonly string[] TwirpMethods = ["CreateCacheEntry", "FinalizeCacheEntryUpload", "GetCacheEntryDownloadURL"];

    /// <summary>The route kind, or null when the request must be refused.</summary>
    /// <param name="path">The request's path as sent (not decoded): an escaped or dotted path is never forwarded.</param>
    public static StepCacheRouteKind? Match(string method, string path)
    {
        if (path.Contains('%') || path.Contains("//", StringComparison.Ordinal) || path.Contains("/.", StringComparison.Ordinal)) return null;
        if (path.StartsWith(TwirpService, StringComparison.Ordinal))
        {
            return method == "POST" && TwirpMethods.Contains(path[TwirpService.Length..], StringComparer.Ordinal) ? StepCacheRouteKind.ActionsApi : null;
        }
        if (path.StartsWith(V1Root, StringComparison.Ordinal))
        {
            var rest = path[V1Root.Length..];
            return (method, rest) switch
            {
                ("GET", "cache" or "caches") => StepCacheRouteKind.ActionsApi,
                ("POST", "caches") => StepCacheRouteKind.ActionsApi,
                ("PATCH" or "POST", _) when rest.StartsWith("caches/", StringComparison.Ordinal) && IsDigits(rest["caches/".Length..]) => StepCacheRouteKind.ActionsApi,
                _ => null,
            };
        }
        if (path.StartsWith(BlobRoot, StringComparison.Ordinal))
        {
            return method is "GET" or "HEAD" or "PUT" && IsDigits(path[BlobRoot.Length..]) ? StepCacheRouteKind.SignedBlob : null;
        }
        foreach (var kind in (string[])["/cache/ac/", "/cache/cas/"])
        {
            if (path.StartsWith(kind, StringComparison.Ordinal))
            {
                var hash = path[kind.Length..];
                return method is "GET" or "HEAD" or "PUT" && hash.Length is > 0 and <= 128 && hash.AsSpan().IndexOfAnyExcept("0123456789abcdef") < 0
                    ? StepCacheRouteKind.BuildCache
                    : null;
            }
        }
        return null;
    }

    private static bool IsDigits(string value) => value.Length is > 0 and <= 19 && value.AsSpan().IndexOfAnyExcept("0123456789") < 0;
}
