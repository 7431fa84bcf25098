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
}
