namespace EphemeralCI.JobTokens;

public sealed class JobTokenOptions
{
    public const string Section = "JobTokens";

    /// <summary>
    /// Interim HS256 key, shared by whoever issues and whoever validates: base64 of at least 32 random
    /// bytes, or a generated random string of at least 43 characters (as the AppHost's generated
    /// parameter is). Used only when <see cref="Authority"/> is not set.
    /// </summary>
    public string SigningKey { get; set; } = "";

    /// <summary>
    /// Base URL of the secrets broker (e.g. <c>http://secrets-broker</c> through service discovery).
    /// When set, tokens are validated against its JWKS (ES256) and HS256 tokens are refused.
    /// </summary>
    public string? Authority { get; set; }

    /// <summary>
    /// The provisioner's credential for the broker's mint endpoint. With <see cref="Authority"/>, it makes
    /// this process mint job tokens through the broker instead of with <see cref="SigningKey"/>.
    /// </summary>
    public string? ProvisionerToken { get; set; }

    public string Issuer { get; set; } = "ephemeralci";
    public string Audience { get; set; } = "ephemeralci-runner";
    /// <summary>Added to the job's deadline so a token outlives its job only by this much.</summary>
    public TimeSpan ExpiryMargin { get; set; } = TimeSpan.FromMinutes(2);
    /// <summary>How long a job's revocation is kept: longer than any of its tokens can live (deadline + margin).</summary>
    public TimeSpan RevocationRetention { get; set; } = TimeSpan.FromDays(8);
    /// <summary>How long the broker's discovery document and keys are trusted before they are fetched again (at least 5 minutes).</summary>
    public TimeSpan JwksRefreshInterval { get; set; } = TimeSpan.FromMinutes(5);

    internal byte[] KeyBytes()
    {
        if (string.IsNullOrWhiteSpace(SigningKey))
        {
            throw new InvalidOperationException($"Configuration setting '{Section}:SigningKey' is missing: set it to base64 of 32 random bytes.");
        }
        try
        {
            var decoded = Convert.FromBase64String(SigningKey);
            if (decoded.Length >= 32) return decoded;
        }
        catch (FormatException) { /* not base64: treat as a random string below */ }
        if (SigningKey.Length >= 43) return System.Text.Encoding.UTF8.GetBytes(SigningKey);
        throw new InvalidOperationException(
            $"Configuration setting '{Section}:SigningKey' is too short: use base64 of 32 random bytes or 43+ random characters.");
    }
}
