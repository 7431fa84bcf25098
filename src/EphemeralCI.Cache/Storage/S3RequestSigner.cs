using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace EphemeralCI.Cache.Storage;

/// <summary>
/// AWS Signature Version 4 for the few S3 calls the Minio SDK keeps private in 7.0.0 (multipart upload:
/// create, upload part, complete, abort) and for ranged GETs (its GetObject with an offset throws
/// PartialContentException). Header signing with <c>UNSIGNED-PAYLOAD</c>: the cache checks the archive's
/// SHA-256 itself, so a second hash of every part only for the signature would cost a pass over the bytes.
/// </summary>
internal sealed class S3RequestSigner(S3Settings settings, TimeProvider clock)
{
    public const string UnsignedPayload = "UNSIGNED-PAYLOAD";

    /// <summary>Path-style URL of <paramref name="key"/> in the bucket, with a canonical (sorted, encoded) query.</summary>
    public Uri ObjectUri(string key, IReadOnlyDictionary<string, string>? query = null)
    {
        var path = "/" + Uri.EscapeDataString(settings.Bucket) + "/" + string.Join('/', key.Split('/').Select(Uri.EscapeDataString));
        var builder = new UriBuilder(settings.Endpoint) { Path = path, Query = CanonicalQuery(query) };
        return builder.Uri;
    }

    /// <summary>Adds <c>x-amz-date</c>, <c>x-amz-content-sha256</c> and <c>Authorization</c> to <paramref name="request"/>.</summary>
    public void Sign(HttpRequestMessage request)
    {
        var uri = request.RequestUri ?? throw new ArgumentException("The request has no URI.", nameof(request));
        var now = clock.GetUtcNow().UtcDateTime;
        var amzDate = now.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        var date = amzDate[..8];
        var host = uri.IsDefaultPort ? uri.Host : $"{uri.Host}:{uri.Port.ToString(CultureInfo.InvariantCulture)}";
        request.Headers.Host = host;
        request.Headers.TryAddWithoutValidation("x-amz-date", amzDate);
        request.Headers.TryAddWithoutValidation("x-amz-content-sha256", UnsignedPayload);

        const string signedHeaders = "host;x-amz-content-sha256;x-amz-date";
        var canonicalRequest = string.Join('\n',
            request.Method.Method,
            uri.AbsolutePath,
            uri.Query.TrimStart('?'),
            $"host:{host}\nx-amz-content-sha256:{UnsignedPayload}\nx-amz-date:{amzDate}\n",
            signedHeaders,
            UnsignedPayload);
        var scope = $"{date}/{settings.Region}/s3/aws4_request";
        var stringToSign = $"AWS4-HMAC-SHA256\n{amzDate}\n{scope}\n{Hex(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalRequest)))}";
        var key = Hmac(Encoding.UTF8.GetBytes("AWS4" + settings.SecretKey), date);
        key = Hmac(key, settings.Region);
        key = Hmac(key, "s3");
        key = Hmac(key, "aws4_request");
        var signature = Hex(Hmac(key, stringToSign));
        request.Headers.TryAddWithoutValidation("Authorization",
            $"AWS4-HMAC-SHA256 Credential={settings.AccessKey}/{scope}, SignedHeaders={signedHeaders}, Signature={signature}");
    }

    /// <summary>Keys sorted ordinally, names and values RFC 3986-encoded, valueless keys as <c>key=</c> (what SigV4 signs).</summary>
    internal static string CanonicalQuery(IReadOnlyDictionary<string, string>? query) => query is null or { Count: 0 }
        ? ""
        : string.Join('&', query.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(p.Value)}"));

    private static byte[] Hmac(byte[] key, string data) => HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(data));

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);
}
