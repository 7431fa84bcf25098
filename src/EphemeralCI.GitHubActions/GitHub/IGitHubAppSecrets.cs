namespace EphemeralCI.GitHubActions.GitHub;

/// <summary>
/// Reads the App's operator-only secrets (private key, webhook secret) from the secrets broker: in the all-in-one
/// server straight from its store (audited as actor <c>github-actions</c>); as a service, over the broker's
/// operator-secret endpoint with this service's own token. Values are kept in memory only.
/// </summary>
public interface IGitHubAppSecrets
{
    Task<string?> ReadAsync(string name, CancellationToken ct);
}
