using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using EphemeralCI.GitHubActions.GitHub;
using EphemeralCI.IntegrationTests.Infrastructure;
using EphemeralCI.IntegrationTests.SecretsBroker;
using EphemeralCI.SecretsBroker.Apis;
using Xunit;

namespace EphemeralCI.IntegrationTests.GitHubActions;

/// <summary>
/// The GitHub Actions adapter as a service reads the App's secrets from the broker with a credential of its own that
/// opens <c>ECI_GITHUB_*</c> and nothing else: not the cache's forge credentials, not with the cache's token.
/// </summary>
public sealed class GitHubAppSecretsTests : IAsyncLifetime
{
    private const string AdapterToken = "github-actions-reads-app-secrets-51c0";
    private const string CacheToken = "cache-reads-operator-secrets-8e2a";
    private BrokerTestApp _broker = null!;
    private int _adminPort;

    public async Task InitializeAsync()
    {
        _adminPort = FreePort.Next();
        _broker = await BrokerTestApp.StartAsync(overKestrel: true, urls: $"http://127.0.0.1:{FreePort.Next()};http://127.0.0.1:{_adminPort}",
            extra: new Dictionary<string, string?>
            {
                ["AdminListener:Port"] = _adminPort.ToString(),
                ["SecretsBroker:CacheToken"] = CacheToken,
                ["SecretsBroker:GitHubActionsToken"] = AdapterToken,
            });
        _broker.Client.BaseAddress = new Uri($"http://127.0.0.1:{_adminPort}");
    }

    public async Task DisposeAsync() => await _broker.DisposeAsync();

    private HttpClient Client(string token) => new()
    {
        BaseAddress = new Uri($"http://127.0.0.1:{_adminPort}/"),
        DefaultRequestHeaders = { Authorization = new AuthenticationHeaderValue("Bearer", token) },
    };

    [Fact]
    public async Task The_adapters_token_reads_the_App_secrets_and_nothing_else_and_the_cache_token_cannot_read_them()
    {
        const string pem = "-----BEGIN PRIVATE KEY-----\nnot-a-real-key-3f9\n-----END PRIVATE KEY-----";
        await _broker.PutSecretAsync("ECI_GITHUB_APP_PRIVATE_KEY", pem, ["**"], ["**"]);
        await _broker.PutSecretAsync("ECI_FORGE_TOKEN", "forge-token-value-77a1", ["**"], ["**"]);

        using var adapter = Client(AdapterToken);
        var secrets = new HttpGitHubAppSecrets(adapter);
        Assert.Equal(pem, await secrets.ReadAsync("ECI_GITHUB_APP_PRIVATE_KEY", default));
        Assert.Null(await secrets.ReadAsync("ECI_GITHUB_WEBHOOK_SECRET", default));

        using (var forge = await adapter.GetAsync("internal/v1/github-app-secrets/ECI_FORGE_TOKEN"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, forge.StatusCode);
            Assert.DoesNotContain("forge-token-value", await forge.Content.ReadAsStringAsync());
        }
        using (var cacheDoor = await adapter.GetAsync("internal/v1/operator-secrets/ECI_FORGE_TOKEN"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, cacheDoor.StatusCode);
        }
        using (var cache = Client(CacheToken))
        using (var appDoor = await cache.GetAsync("internal/v1/github-app-secrets/ECI_GITHUB_APP_PRIVATE_KEY"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, appDoor.StatusCode);
        }

        using var audit = await _broker.Client.SendAsync(_broker.Admin(HttpMethod.Get, "/api/v1/admin/audit/?limit=500"));
        var entries = (await audit.Content.ReadFromJsonAsync<List<AuditEntryDto>>())!;
        Assert.Contains(entries, a => a is { Action: "operator-secret.read", Actor: "github-actions", Secret: "ECI_GITHUB_APP_PRIVATE_KEY" });
        Assert.DoesNotContain(entries, a => a.Secret == "ECI_FORGE_TOKEN" && a.Actor == "github-actions");
        Assert.DoesNotContain(_broker.Logs.Lines, l => l.Contains("not-a-real-key-3f9"));
    }
}
