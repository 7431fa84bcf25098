namespace EphemeralCI.SecretsBroker;

/// <summary>The <c>SecretsBroker</c> configuration section.</summary>
public sealed class SecretsBrokerOptions
{
    public const string Section = "SecretsBroker";

    /// <summary>
    /// Key-encryption keys by id (<c>SecretsBroker:KeyEncryptionKeys:{id}</c>), each base64 of 32 random
    /// bytes. They never go to the database; rows store only the id of the key that wrapped them.
    /// Several at once make rotation possible: add a key, make it active, rewrap, then remove the old one.
    /// </summary>
    public Dictionary<string, string> KeyEncryptionKeys { get; set; } = [];

    /// <summary>The key new data keys are wrapped with (<c>SecretsBroker:ActiveKeyId</c>).</summary>
    public string ActiveKeyId { get; set; } = "";

    /// <summary>Bearer credential of the admin API. Kept only as a SHA-256 hash in memory.</summary>
    public string AdminToken { get; set; } = "";

    /// <summary>
    /// Alternatively the admin credential's SHA-256 in hex (<c>SecretsBroker:AdminTokenSha256</c>): the
    /// embedded server generates the token, shows it once and keeps only this.
    /// </summary>
    public string? AdminTokenSha256 { get; set; }

    /// <summary>Bearer credential the provisioner presents to mint job tokens.</summary>
    public string ProvisionerToken { get; set; } = "";

    /// <summary>
    /// Bearer credential the cache presents to read operator-only secrets (<c>ECI_*</c>: forge tokens and deploy keys
    /// for its git mirrors). Unset: the operator-secret endpoint is disabled.
    /// </summary>
    public string CacheToken { get; set; } = "";

    /// <summary>
    /// Bearer credential the GitHub Actions adapter presents to read the GitHub App's secrets: operator-only secrets named
    /// <c>ECI_GITHUB_*</c> and nothing else (not the cache's forge credentials). Unset: that endpoint is disabled.
    /// </summary>
    public string GitHubActionsToken { get; set; } = "";

    /// <summary>Bearer credential the intake presents to have job attestations signed (<c>POST /internal/v1/attestations</c>).</summary>
    public string AttestationToken { get; set; } = "";

    /// <summary>How long a token-signing key signs before a new one replaces it.</summary>
    public TimeSpan SigningKeyRotation { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// How long a replaced signing key stays in the JWKS: at least the longest job plus its token
    /// margin, so tokens it signed keep validating until they expire.
    /// </summary>
    public TimeSpan SigningKeyOverlap { get; set; } = TimeSpan.FromDays(2);

    /// <summary>The longest a minted token may live (a job's deadline further out is refused).</summary>
    public TimeSpan MaxTokenLifetime { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Largest secret value accepted, in bytes of UTF-8.</summary>
    public int MaxSecretBytes { get; set; } = 64 * 1024;
}
