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
    /// <summary>Repository globs the key may claim and see (<c>acme/*</c>). Required for every key but an admin key; empty only on keys made before bindings existed, which are refused.</summary>
    public List<string> Repositories { get; set; } = [];
    /// <summary>Ref globs the key may claim (<c>refs/heads/*</c>); <c>*</c>-style "any" must be written out.</summary>
    public List<string> Refs { get; set; } = [];
    /// <summary>Runner templates the key may use; empty: any template.</summary>
    public List<string> Templates { get; set; } = [];
    /// <summary>Environments the key may name; empty: none (a job of this key cannot name an environment).</summary>
    public List<string> Environments { get; set; } = [];
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
    public DateTimeOffset? LastUsedAt { get; set; }
}
