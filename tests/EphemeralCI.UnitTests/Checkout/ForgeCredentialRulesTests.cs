using EphemeralCI.Cache.Git;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Xunit;

namespace EphemeralCI.UnitTests.Checkout;

/// <summary>Which forge credential a repository gets, what kind a secret's value is, and how long a read is remembered.</summary>
public class ForgeCredentialRulesTests
{
    private const string Key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n";

    private sealed class CountingSecrets(Dictionary<string, string> values) : IOperatorSecrets
    {
        public List<string> Reads { get; } = [];
        public Task<string?> ReadAsync(string name, CancellationToken ct)
        {
            Reads.Add(name);
            return Task.FromResult(values.GetValueOrDefault(name));
        }
    }

    private static (ForgeCredentials Credentials, CountingSecrets Secrets, FakeTimeProvider Clock) Create(CheckoutOptions options, Dictionary<string, string> values)
    {
        var secrets = new CountingSecrets(values);
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var monitor = new StaticMonitor(options);
        return (new ForgeCredentials(monitor, secrets, clock), secrets, clock);
    }

    private sealed class StaticMonitor(CheckoutOptions value) : IOptionsMonitor<CheckoutOptions>
    {
        public CheckoutOptions CurrentValue => value;
        public CheckoutOptions Get(string? name) => value;
        public IDisposable? OnChange(Action<CheckoutOptions, string?> listener) => null;
    }

    [Fact]
    public async Task The_first_matching_repository_entry_wins_and_others_fall_back_to_the_global_secret()
    {
        var (credentials, secrets, _) = Create(new CheckoutOptions
        {
            TokenSecret = "ECI_GLOBAL",
            Repositories = [new() { Match = "acme/*", TokenSecret = "ECI_ACME" }, new() { Match = "acme/*", TokenSecret = "ECI_SHADOWED" }, new() { Match = "public/*", Url = "https://x/{repository}" }],
        }, new() { ["ECI_GLOBAL"] = "global-token", ["ECI_ACME"] = "acme-token" });

        using (var acme = await credentials.GetAsync("acme/app", "https://forge/acme/app.git", default)) Assert.Contains("***", acme!.Redact("acme-token"));
        // An entry with a URL but no credential does not stop the fallback.
        using (var other = await credentials.GetAsync("public/app", "https://x/public/app", default)) Assert.Equal("***", other!.Redact("global-token"));
        Assert.Equal(["ECI_ACME", "ECI_GLOBAL"], secrets.Reads);
    }

    [Fact]
    public async Task A_read_is_remembered_for_a_minute_so_a_rotation_applies_within_one()
    {
        var (credentials, secrets, clock) = Create(new CheckoutOptions { TokenSecret = "ECI_T" }, new() { ["ECI_T"] = "t" });
        for (var i = 0; i < 5; i++) (await credentials.GetAsync("a/b", "https://f/a/b", default))!.Dispose();
        Assert.Single(secrets.Reads);
        clock.Advance(TimeSpan.FromSeconds(61));
        (await credentials.GetAsync("a/b", "https://f/a/b", default))!.Dispose();
        Assert.Equal(2, secrets.Reads.Count);
    }

    [Fact]
    public async Task A_missing_secret_fails_the_fetch_naming_it_and_no_configuration_means_a_public_forge()
    {
        var (credentials, _, _) = Create(new CheckoutOptions { TokenSecret = "ECI_GONE" }, []);
        var e = await Assert.ThrowsAsync<MirrorFetchException>(() => credentials.GetAsync("a/b", "https://f/a/b", default));
        Assert.Contains("'ECI_GONE' does not exist", e.Message);
        var (none, _, _) = Create(new CheckoutOptions(), []);
        Assert.Null(await none.GetAsync("a/b", "https://f/a/b", default));
    }

    [Fact]
    public void A_private_key_is_a_deploy_key_that_needs_host_keys_and_anything_else_is_a_token()
    {
        Assert.IsType<TokenCredential>(ForgeCredential.FromSecret("ghp_abc", null));
        var e = Assert.Throws<MirrorFetchException>(() => ForgeCredential.FromSecret(Key, null));
        Assert.Contains("SshKnownHosts", e.Message);
        using var key = ForgeCredential.FromSecret(Key, "[h]:22 ssh-ed25519 AAAA");
        Assert.Equal("SshKeyCredential", key.GetType().Name);
        var command = Assert.Single(key.GitConfig()).Value;
        Assert.Contains("StrictHostKeyChecking=yes", command);
        Assert.Contains("-F /dev/null", command);
        Assert.DoesNotContain("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW", key.Redact("ssh said b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"));
        Assert.DoesNotContain("ghp_abc", new TokenCredential("ghp_abc").ToString());
    }
}

/// <summary>Git children of the cache get none of the host's .NET settings, which may carry credentials.</summary>
public class GitCommandEnvironmentTests
{
    [Fact]
    public void The_hosts_double_underscore_settings_never_reach_git_but_its_own_config_does()
    {
        var psi = new System.Diagnostics.ProcessStartInfo("git");
        psi.Environment["Checkout__Token"] = "ghp_host-setting";
        psi.Environment["ConnectionStrings__cachedb"] = "Host=x;Password=y";
        psi.Environment["PATH"] = "/usr/bin";
        EphemeralCI.Cache.Git.GitCommand.Prepare(psi, [new("http.extraHeader", "Authorization: Basic abc")]);
        Assert.False(psi.Environment.ContainsKey("Checkout__Token"));
        Assert.False(psi.Environment.ContainsKey("ConnectionStrings__cachedb"));
        Assert.Equal("/usr/bin", psi.Environment["PATH"]);
        Assert.Equal("http.extraHeader", psi.Environment["GIT_CONFIG_KEY_0"]);
        Assert.Equal("1", psi.Environment["GIT_CONFIG_COUNT"]);
    }
}
