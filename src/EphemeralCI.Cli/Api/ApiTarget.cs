namespace EphemeralCI.Cli.Api;

/// <summary>
/// Which EphemeralCI API a client talks to, so an error names the right service and the right
/// credential: in the AppHost topology the intake, the secrets broker and the cache each have
/// their own address and their own credential.
/// </summary>
/// <param name="Kind">What the server should be, for "does not look like ...".</param>
public sealed record ApiTarget(
    string ServiceName, string Kind, string CredentialName, string SetCredential, string CredentialVariable, string SetServer, string ServerVariable, string ProbePath)
{
    public static readonly ApiTarget Intake = new(
        "EphemeralCI server", "an EphemeralCI intake", "API key", "eci config set --key -", "ECI_API_KEY", "eci config set --server URL", "ECI_SERVER", "/api/v1/jobs");

    public static readonly ApiTarget SecretsBroker = new(
        "secrets broker", "an EphemeralCI secrets broker", "secrets admin token", "eci config set --secrets-token -", "ECI_SECRETS_TOKEN",
        "eci config set --secrets-server URL", "ECI_SECRETS_SERVER", "/api/v1/admin/secrets");

    public static readonly ApiTarget Cache = new(
        "cache", "an EphemeralCI cache", "cache admin token", "eci config set --cache-token -", "ECI_CACHE_TOKEN",
        "eci config set --cache-server URL", "ECI_CACHE_SERVER", "/cache/admin/usage");
}
