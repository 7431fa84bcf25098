using System.Net;
using System.Net.Http.Json;

namespace EphemeralCI.GitHubActions.GitHub;

/// <summary>
/// The broker's read of the App's secrets (<c>GET /internal/v1/github-app-secrets/{name}</c>, admin listener) with this
/// service's own token (<c>SecretsBroker:GitHubActionsToken</c>): it opens <c>ECI_GITHUB_*</c> only, every read audited.
/// </summary>
public sealed class HttpGitHubAppSecrets(HttpClient http) : IGitHubAppSecrets
{
    public async Task<string?> ReadAsync(string name, CancellationToken ct)
    {
        using var response = await http.GetAsync($"internal/v1/github-app-secrets/{Uri.EscapeDataString(name)}", ct);
        if (response.StatusCode == HttpStatusCode.NotFound) return null;
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<OperatorSecret>(ct))?.Value;
    }

    private sealed record OperatorSecret(string Name, int Version, string Value);
}
