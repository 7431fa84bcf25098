namespace EphemeralCI.SecretsBroker.Infrastructure;

/// <summary>A named secret and the policy that says which jobs may receive it. Its values live in <see cref="SecretVersion"/>.</summary>
public sealed class Secret
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public List<string> RepositoryPatterns { get; set; } = [];
    public List<string> RefPatterns { get; set; } = [];
    public string? Environment { get; set; }
    public int CurrentVersion { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    public required string UpdatedBy { get; set; }
    public List<SecretVersion> Versions { get; set; } = [];
}

/// <summary>One value of a secret, sealed (see <c>EnvelopeCipher</c>): never plaintext.</summary>
public sealed class SecretVersion
{
    public Guid SecretId { get; set; }
    public int Version { get; set; }
    public required byte[] Ciphertext { get; set; }
    public required byte[] WrappedDataKey { get; set; }
    public required string KeyId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public required string CreatedBy { get; set; }
}

/// <summary>An ES256 key that signs job tokens; its private half sealed under the key-encryption key.</summary>
public sealed class SigningKey
{
    public required string Kid { get; set; }
    public required string PublicJwk { get; set; }
    public required byte[] PrivateKeyCiphertext { get; set; }
    public required byte[] WrappedDataKey { get; set; }
    public required string KeyId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>When it stops signing (a newer key takes over).</summary>
    public DateTimeOffset SignsUntil { get; set; }
    /// <summary>When it leaves the JWKS: after every token it signed has expired.</summary>
    public DateTimeOffset PublishedUntil { get; set; }
}

/// <summary>One line of the append-only audit log. Never holds a secret value.</summary>
public sealed class AuditEntry
{
    public long Id { get; set; }
    public DateTimeOffset At { get; set; }
    public required string Actor { get; set; }
    public required string Action { get; set; }
    public string? SecretName { get; set; }
    public Guid? JobId { get; set; }
    public string? Repository { get; set; }
    public string? Ref { get; set; }
    public string? TokenId { get; set; }
    /// <summary>Which attempt of the job the line is about (a retried job has a token per attempt); null on lines about no job, and on lines written before attempts existed (read as 1).</summary>
    public int? Attempt { get; set; }
    public string? Detail { get; set; }
}
