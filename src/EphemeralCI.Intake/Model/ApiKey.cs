namespace EphemeralCI.Intake.Model;

/// <summary>A CI system's credential. Only the SHA-256 of the key is stored, never the key.</summary>
public sealed class ApiKey
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    /// <summary>The first characters of the key: not secret, used to find the row and to recognise a key in a list.</summary>
    public required string Prefix { get; set; }
    public required byte[] Hash { get; set; }
    public List<string> Scopes { get; set; } = [];
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
    public DateTimeOffset? LastUsedAt { get; set; }
}
