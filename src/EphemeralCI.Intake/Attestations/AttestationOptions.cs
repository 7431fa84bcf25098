namespace EphemeralCI.Intake.Attestations;

/// <summary>The <c>Attestations</c> section: how the intake has its jobs' attestations signed.</summary>
public sealed class AttestationOptions
{
    public const string Section = "Attestations";

    /// <summary>Attest every job whose runner was destroyed (default). Off only to measure the cost.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The secrets broker's base URL for signing; default <c>JobTokens:Authority</c>. Give its admin listener when it has one.</summary>
    public string? SignerUrl { get; set; }

    /// <summary>The intake's credential for the broker's signer (the broker's <c>SecretsBroker:AttestationToken</c>).</summary>
    public string? SignerToken { get; set; }

    /// <summary>
    /// The dependency cache's admin listener (e.g. <c>http://cache:8081</c>), asked what it served to each job for the
    /// attestation's cache list. Unset (and no cache in this process): the list is what the runner reported, marked so.
    /// </summary>
    public string? CacheUrl { get; set; }

    /// <summary>The intake's credential for that (the cache's <c>Cache:AttestationToken</c>).</summary>
    public string? CacheToken { get; set; }

    /// <summary>The predicate's <c>runDetails.builder.id</c>: a URI naming this installation.</summary>
    public string BuilderId { get; set; } = EphemeralCI.Attestations.AttestationFormat.DefaultBuilderId;

    /// <summary>How often jobs that should have an attestation but have none (the signer was down) are looked for.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(30);
}
