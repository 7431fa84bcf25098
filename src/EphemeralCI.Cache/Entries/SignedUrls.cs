using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Entries;

public enum SignedUrlPurpose
{
    Upload,
    Download,
}

/// <summary>
/// HMAC-SHA256 signed, expiring capabilities for the blob endpoints: the Azure SDK (upload) and the
/// toolkit's downloader send no job token, so the URL itself must say who may do what to which entry
/// until when. The signature covers purpose, entry id, the reserving job and the expiry; any other
/// query parameters (the SDK's <c>comp</c>, <c>blockid</c>) are not signed and only select the operation.
/// </summary>
public sealed class SignedUrls
{
    private readonly byte[] _key;
    private readonly TimeProvider _clock;
    private readonly TimeSpan _lifetime;

    public SignedUrls(IOptions<CacheOptions> options, TimeProvider clock)
    {
        _clock = clock;
        _lifetime = options.Value.SignedUrlLifetime;
        var configured = options.Value.UrlSigningKey;
        if (string.IsNullOrWhiteSpace(configured))
        {
            _key = RandomNumberGenerator.GetBytes(32);
        }
        else
        {
            try
            {
                _key = Convert.FromBase64String(configured);
            }
            catch (FormatException)
            {
                throw new InvalidOperationException($"Configuration setting '{CacheOptions.Section}:UrlSigningKey' is not base64.");
            }
            if (_key.Length < 32) throw new InvalidOperationException($"Configuration setting '{CacheOptions.Section}:UrlSigningKey' must be base64 of at least 32 bytes.");
        }
    }

    /// <summary>The query string (without '?') that authorizes <paramref name="purpose"/> on the entry until now + lifetime.</summary>
    public string Sign(SignedUrlPurpose purpose, long entryId, Guid jobId)
    {
        var expires = _clock.GetUtcNow().Add(_lifetime).ToUnixTimeSeconds();
        return $"job={jobId:N}&exp={expires.ToString(CultureInfo.InvariantCulture)}&sig={Signature(purpose, entryId, jobId, expires)}";
    }

    /// <summary>Checks a presented signature; the job id it was issued for comes back so the caller can match it to the reservation.</summary>
    public SignedUrlCheck Verify(SignedUrlPurpose purpose, long entryId, string? job, string? exp, string? sig)
    {
        if (!Guid.TryParseExact(job, "N", out var jobId) || !long.TryParse(exp, NumberStyles.None, CultureInfo.InvariantCulture, out var expires)
            || string.IsNullOrEmpty(sig))
        {
            return new(SignedUrlStatus.Malformed, Guid.Empty);
        }
        var expected = Encoding.ASCII.GetBytes(Signature(purpose, entryId, jobId, expires));
        if (!CryptographicOperations.FixedTimeEquals(expected, Encoding.ASCII.GetBytes(sig))) return new(SignedUrlStatus.BadSignature, jobId);
        return _clock.GetUtcNow().ToUnixTimeSeconds() > expires ? new(SignedUrlStatus.Expired, jobId) : new(SignedUrlStatus.Valid, jobId);
    }

    private string Signature(SignedUrlPurpose purpose, long entryId, Guid jobId, long expires) =>
        Convert.ToBase64String(HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(
            $"{purpose}\n{entryId.ToString(CultureInfo.InvariantCulture)}\n{jobId:N}\n{expires.ToString(CultureInfo.InvariantCulture)}")))
            .TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

public enum SignedUrlStatus
{
    Valid,
    Malformed,
    BadSignature,
    Expired,
}

public readonly record struct SignedUrlCheck(SignedUrlStatus Status, Guid JobId);
