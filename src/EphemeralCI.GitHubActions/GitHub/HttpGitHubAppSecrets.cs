using System.Net;
using System.Net.Http.Json;

namespace EphemeralCI.GitHubActions.GitHub;

/// <summary>The broker's operator-secret read (<c>GET /internal/v1/operator-secrets/{name}</c>) with this service's broker token.</summary>
public sealed class HttpGitHubAppSecrets(HttpClient http) : IGitHubAppSecrets
{
    public async Task<string?> ReadAsync(string name, CancellationToken ct)
    {
        using var response = await http.GetAsync($"internal/v1/operator-secrets/{Uri.EscapeDataString(name)}", ct);
        if (response.StatusCode == HttpStatusCode.NotFound) return null;
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<OperatorSecret>(ct))?.Value;
    }

    private sealed record OperatorSecret(string Name, int Version, string Value);
}
