namespace EphemeralCI.JobTokens;

public sealed class JobTokenOptions
{
    public const string Section = "JobTokens";

    /// <summary>Base64 of at least 32 random bytes, shared by whoever issues and whoever validates.</summary>
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
        byte[] key;
        try { key = Convert.FromBase64String(SigningKey); }
        catch (FormatException) { throw new InvalidOperationException($"Configuration setting '{Section}:SigningKey' is not valid base64."); }
        if (key.Length < 32)
        {
            throw new InvalidOperationException($"Configuration setting '{Section}:SigningKey' must decode to at least 32 bytes.");
        }
        return key;
    }
}
