using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using EphemeralCI.IntegrationTests.SecretsBroker;
using EphemeralCI.SecretsBroker.Apis;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// Issue 15 item 1: the cache's forge credentials are operator-only secrets (<c>ECI_*</c>) in the secrets broker, read
/// over its admin listener with the cache's own credential — a token for a private HTTP forge, an SSH deploy key for an
/// SSH forge (the real sshd) — and never handed to a job, never in a log or an error.
/// </summary>
public sealed class ForgeCredentialTests : IAsyncLifetime
{
    private const string CacheToken = "cache-reads-operator-secrets-7d1e0b";
    private TestForge _forge = null!;
    private BrokerTestApp _broker = null!;
    private int _adminPort;
    private readonly List<string> _mirrorRoots = [];

    public async Task InitializeAsync()
    {
        _forge = await TestForge.StartAsync();
        var publicPort = FreePort.Next();
        _adminPort = FreePort.Next();
        _broker = await BrokerTestApp.StartAsync(overKestrel: true, urls: $"http://127.0.0.1:{publicPort};http://127.0.0.1:{_adminPort}",
            extra: new Dictionary<string, string?> { ["AdminListener:Port"] = _adminPort.ToString(), ["SecretsBroker:CacheToken"] = CacheToken });
        _broker.Client.BaseAddress = new Uri($"http://127.0.0.1:{_adminPort}");
    }

    public async Task DisposeAsync()
    {
        await _broker.DisposeAsync();
        await _forge.DisposeAsync();
        foreach (var root in _mirrorRoots.Where(Directory.Exists)) Directory.Delete(root, recursive: true);
    }

    private async Task<(CacheTestApp Cache, CapturedLogs Logs)> StartCacheAsync(Dictionary<string, string?> checkout)
    {
        var root = Path.Combine(Path.GetTempPath(), "eci-it-mirrors-" + Guid.NewGuid().ToString("N")[..8]);
        _mirrorRoots.Add(root);
        var settings = new Dictionary<string, string?>
        {
            ["Checkout:Enabled"] = "true",
            ["Checkout:MirrorRoot"] = root,
            ["Checkout:FetchTimeout"] = "00:00:30",
            ["Checkout:SecretsBrokerUrl"] = $"http://127.0.0.1:{_adminPort}",
            ["Checkout:SecretsBrokerToken"] = CacheToken,
        };
        foreach (var (k, v) in checkout) settings[k] = v;
        var logs = new CapturedLogs();
        var cache = await CacheTestApp.StartAsync(1 << 20, fileSystem: true, settings: settings,
            services: (s, _) => s.AddLogging(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Trace)));
        return (cache, logs);
    }

    private static async Task<(HttpStatusCode Status, string Body)> VerifyAsync(CacheTestApp cache, string repository, string commit)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "git/verify") { Content = JsonContent.Create(new { commitSha = commit }) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", cache.Mint(repository));
        using var response = await cache.Client.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private async Task<List<AuditEntryDto>> AuditAsync()
    {
        using var response = await _broker.Client.SendAsync(_broker.Admin(HttpMethod.Get, "/api/v1/admin/audit/?limit=500"));
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<List<AuditEntryDto>>())!;
    }

    [Fact]
    public async Task A_token_from_the_broker_fetches_a_private_repository_and_a_wrong_or_missing_one_fails_saying_why_without_the_value()
    {
        const string token = "ghp_private-forge-token-3c9a71e2";
        const string wrong = "ghp_wrong-token-never-shown-5b2e";
        await using var http = await TokenForge.StartAsync(_forge, token);
        var commit = _forge.CreateRepository("acme/private");
        _forge.CreateRepository("other/private");
        await _broker.PutSecretAsync("ECI_FORGE_TOKEN", token, ["**"], ["**"]);
        await _broker.PutSecretAsync("ECI_OTHER_TOKEN", wrong, ["**"], ["**"]);
        var (cache, logs) = await StartCacheAsync(new()
        {
            ["Checkout:UrlTemplate"] = http.UrlTemplate,
            ["Checkout:TokenSecret"] = "ECI_FORGE_TOKEN",
            ["Checkout:Repositories:0:Match"] = "other/*",
            ["Checkout:Repositories:0:TokenSecret"] = "ECI_OTHER_TOKEN",
            ["Checkout:Repositories:1:Match"] = "gone/*",
            ["Checkout:Repositories:1:TokenSecret"] = "ECI_NOT_THERE",
        });
        await using var _ = cache;

        var ok = await VerifyAsync(cache, "acme/private", commit);
        Assert.True(ok.Status == HttpStatusCode.OK, ok.Body);
        Assert.True(http.Served > 0);

        var refused = await VerifyAsync(cache, "other/private", commit);
        Assert.Equal(HttpStatusCode.BadGateway, refused.Status);
        Assert.Contains("fetching other/private", refused.Body);
        Assert.True(http.Refused > 0);

        var missing = await VerifyAsync(cache, "gone/repo", commit);
        Assert.Equal(HttpStatusCode.BadGateway, missing.Status);
        Assert.Contains("'ECI_NOT_THERE' does not exist in the secrets broker", missing.Body);

        // Without the broker's credential for the cache there is no read at all.
        using (var anonymous = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_adminPort}") })
        using (var r = await anonymous.GetAsync("/internal/v1/operator-secrets/ECI_FORGE_TOKEN")) Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);

        foreach (var text in logs.Lines.Concat([ok.Body, refused.Body, missing.Body]).Concat(_broker.Logs.Lines))
        {
            Assert.DoesNotContain(token, text);
            Assert.DoesNotContain(wrong, text);
        }
        // Every read is the broker's to account for: by the cache, with the version, found or not.
        var audit = await AuditAsync();
        Assert.Contains(audit, a => a is { Action: "operator-secret.read", Actor: "cache", Secret: "ECI_FORGE_TOKEN" } && a.Detail == "version=1");
        Assert.Contains(audit, a => a is { Action: "operator-secret.read", Actor: "cache", Secret: "ECI_OTHER_TOKEN" });
        Assert.Contains(audit, a => a is { Action: "operator-secret.missing", Actor: "cache", Secret: "ECI_NOT_THERE" });
    }

    [Fact]
    public async Task An_operator_secret_is_refused_to_every_job_whatever_its_policy_and_the_read_is_on_the_admin_listener_only()
    {
        await _broker.PutSecretAsync("ECI_FORGE_TOKEN", "operator-only-value-1f0c", ["**"], ["**"]);
        await _broker.PutSecretAsync("eci_lower_case", "operator-only-value-2a7d", ["**"], ["**"]);
        var jobToken = await _broker.MintAsync(Guid.NewGuid());
        using var publicSide = new HttpClient { BaseAddress = new Uri(_broker.App.Urls.First(u => !u.EndsWith($":{_adminPort}", StringComparison.Ordinal))) };
        using var exchange = new HttpRequestMessage(HttpMethod.Post, "/api/v1/secrets/exchange")
        {
            Headers = { Authorization = new AuthenticationHeaderValue("Bearer", jobToken) },
            Content = JsonContent.Create(new { secrets = new[] { "ECI_FORGE_TOKEN", "eci_lower_case", "ECI_DOES_NOT_EXIST" } }),
        };
        using var response = await publicSide.SendAsync(exchange);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        var denied = JsonDocument.Parse(body).RootElement.GetProperty("denied");
        // The same reason whether it exists or not: a job cannot probe for operator secrets.
        Assert.Equal("operator-only", denied.GetProperty("ECI_FORGE_TOKEN").GetString());
        Assert.Equal("operator-only", denied.GetProperty("eci_lower_case").GetString());
        Assert.Equal("operator-only", denied.GetProperty("ECI_DOES_NOT_EXIST").GetString());
        Assert.DoesNotContain("operator-only-value", body);

        HttpRequestMessage Read(string name) => new(HttpMethod.Get, $"/internal/v1/operator-secrets/{name}")
        {
            Headers = { Authorization = new AuthenticationHeaderValue("Bearer", CacheToken) },
        };
        using (var r = await publicSide.SendAsync(Read("ECI_FORGE_TOKEN"))) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_adminPort}") };
        using (var r = await admin.SendAsync(Read("ECI_FORGE_TOKEN")))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal("no-store", r.Headers.CacheControl?.ToString());
            Assert.Equal("operator-only-value-1f0c", (await r.Content.ReadFromJsonAsync<OperatorSecret>())!.Value);
        }
        // A job's secret is not the cache's to read, and the answer names the field.
        await _broker.PutSecretAsync("NPM_TOKEN", "a-job-secret", ["**"], ["**"]);
        using (var r = await admin.SendAsync(Read("NPM_TOKEN")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Contains("\"name\"", await r.Content.ReadAsStringAsync());
        }
        using (var r = await admin.SendAsync(Read("ECI_NOPE"))) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
    }

    [Fact]
    public async Task An_ssh_deploy_key_from_the_broker_fetches_over_ssh_with_strict_host_keys_and_leaves_no_key_file()
    {
        await using var ssh = await SshForge.StartAsync(_forge);
        var commit = _forge.CreateRepository("acme/over-ssh");
        await _broker.PutSecretAsync("ECI_DEPLOY_KEY", ssh.DeployKey, ["**"], ["**"]);
        var keyFolders = () => Directory.Exists("/dev/shm") ? Directory.GetDirectories("/dev/shm", "eci-forge-*").Length : 0;
        var before = keyFolders();

        var (cache, logs) = await StartCacheAsync(new()
        {
            ["Checkout:UrlTemplate"] = ssh.UrlTemplate,
            ["Checkout:TokenSecret"] = "ECI_DEPLOY_KEY",
            ["Checkout:SshKnownHosts"] = ssh.KnownHosts,
        });
        await using (cache)
        {
            var ok = await VerifyAsync(cache, "acme/over-ssh", commit);
            Assert.True(ok.Status == HttpStatusCode.OK, ok.Body + "\nsshd: " + ssh.Log);
            Assert.Equal(before, keyFolders());
            var keyBody = ssh.DeployKey.Split('\n')[1];
            Assert.DoesNotContain(logs.Lines, l => l.Contains(keyBody, StringComparison.Ordinal));
        }

        // A forge whose host key is not the configured one is refused, never trusted on first use.
        var (impostor, _) = await StartCacheAsync(new()
        {
            ["Checkout:UrlTemplate"] = ssh.UrlTemplate,
            ["Checkout:TokenSecret"] = "ECI_DEPLOY_KEY",
            ["Checkout:SshKnownHosts"] = $"[127.0.0.1]:{ssh.Port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEUcW0y2J3mJgkVXj2qNwY4ZbYyRk8Jm2b3u6n2m8rM1",
        });
        await using (impostor)
        {
            var refused = await VerifyAsync(impostor, "acme/over-ssh", commit);
            Assert.Equal(HttpStatusCode.BadGateway, refused.Status);
            Assert.True(refused.Body.Contains("Host key verification failed", StringComparison.Ordinal), refused.Body);
            Assert.Equal(before, keyFolders());
        }
    }
}
