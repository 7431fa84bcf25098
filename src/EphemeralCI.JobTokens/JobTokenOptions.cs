namespace EphemeralCI.JobTokens;

public sealed class JobTokenOptions
{
    public const string Section = "JobTokens";

    /// <summary>
    /// Shared by whoever issues and whoever validates: base64 of at least 32 random bytes, or a
    /// generated random string of at least 43 characters (as the AppHost's generated parameter is).
    /// </summary>
    public string SigningKey { get; set; } = "";
    public string Issuer { get; set; } = "ephemeralci";
    public string Audience { get; set; } = "ephemeralci-runner";
    /// <summary>Added to the job's deadline so a token outlives its job only by this much.</summary>
    public TimeSpan ExpiryMargin { get; set; } = TimeSpan.FromMinutes(2);

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
