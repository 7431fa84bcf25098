namespace EphemeralCI.Intake;

/// <summary>The <c>Intake</c> configuration section.</summary>
public sealed class IntakeOptions
{
    public const string Section = "Intake";

    /// <summary>
    /// The first admin key, used only while the api_keys table is empty. Must look like a key we
    /// would generate (<c>eci_</c> + base64url of ≥32 bytes). When unset, one is generated and
    /// printed once to standard output.
    /// </summary>
    public string? BootstrapAdminKey { get; set; }

    /// <summary>How much log text one job may store; the rest is dropped with a note.</summary>
    public long MaxLogBytesPerJob { get; set; } = 64L * 1024 * 1024;

    /// <summary>CI systems whose own OIDC tokens may submit jobs without an API key (docs/security.md, "Trust policies").</summary>
    public List<Auth.Federation.TrustPolicy> TrustPolicies { get; set; } = [];

    public FederationOptions Federation { get; set; } = new();

    /// <summary>The secret that encrypts the data-protection key ring in the database (sessions, antiforgery, sealed job-spec values).</summary>
    public Infrastructure.DataProtection.IntakeDataProtectionOptions DataProtection { get; set; } = new();
}

public sealed class FederationOptions
{
    /// <summary>How soon after one refresh of an issuer's keys (for a token with an unknown <c>kid</c>) another may happen.</summary>
    public TimeSpan KeyRefreshInterval { get; set; } = TimeSpan.FromMinutes(1);
}
