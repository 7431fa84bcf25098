using System.Net.Http.Json;
using System.Text.Json;
using EphemeralCI.Cli;
using EphemeralCI.IntegrationTests.SecretsBroker;
using Microsoft.AspNetCore.TestHost;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cli;

/// <summary>`eci secrets` against the real secrets broker (its module in a host, on a fresh Postgres database).</summary>
public sealed class CliSecretsTests : IAsyncLifetime
{
    private const string Value = "s3cr3t-from-stdin-\u00e9\u00e8";

    private BrokerTestApp _broker = null!;
    private CliHarness _cli = null!;

    public async Task InitializeAsync()
    {
        _broker = await BrokerTestApp.StartAsync();
        _cli = new CliHarness(_broker.App.GetTestServer().CreateHandler());
        // The all-in-one topology: no secrets server of its own, so the server URL is used.
        _cli.Environment["ECI_SECRETS_TOKEN"] = BrokerTestApp.AdminToken;
    }

    public async Task DisposeAsync()
    {
        _cli.Dispose();
        await _broker.DisposeAsync();
    }

    private Task<CliRun> Eci(params string[] args) => _cli.RunAsync("eci_unused", args);

    /// <summary>What a job allowed by the policy receives: proves the exact stored value.</summary>
    private async Task<IReadOnlyDictionary<string, string>> ReleasedToAsync(string name, string repository = "acme/widgets", string gitRef = "refs/heads/main")
    {
        using var response = await _broker.ExchangeAsync(await _broker.MintAsync(Guid.NewGuid(), repository, gitRef), name);
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return body.GetProperty("secrets").Deserialize<Dictionary<string, string>>()!;
    }

    [Fact]
    public async Task Set_from_stdin_list_show_rotate_change_policy_audit_and_delete()
    {
        _cli.StdIn = Value + "\n"; // what `echo "$VALUE" |` sends: the one trailing newline is not part of the value
        var set = await Eci("secrets", "set", "NPM_TOKEN", "--repo", "acme/*", "--ref", "refs/heads/main", "--ref", "refs/tags/v*");
        Assert.True(set.ExitCode == 0, set.ToString());
        Assert.Contains("NPM_TOKEN", set.StdOut);
        Assert.Contains("version 1", set.StdOut);
        Assert.Equal(Value, (await ReleasedToAsync("NPM_TOKEN"))["NPM_TOKEN"]);

        var list = await Eci("secrets", "list");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Contains("NPM_TOKEN", list.StdOut);
        Assert.Contains("acme/*", list.StdOut);
        Assert.Contains("refs/heads/main refs/tags/v*", list.StdOut);
        var listJson = await Eci("secrets", "list", "--json");
        var listed = JsonDocument.Parse(listJson.StdOut).RootElement.EnumerateArray().Single();
        Assert.Equal("NPM_TOKEN", listed.GetProperty("name").GetString());
        Assert.Equal(["acme/*"], listed.GetProperty("repositories").EnumerateArray().Select(e => e.GetString()));

        var show = await Eci("secrets", "show", "NPM_TOKEN");
        Assert.True(show.ExitCode == 0, show.ToString());
        Assert.Contains("(any)", show.StdOut);
        Assert.Contains("k1", show.StdOut); // the version table names the key it is sealed with

        // A new value under the current policy: no --repo/--ref needed, the policy stays.
        _cli.StdIn = "second-value";
        var rotate = await Eci("secrets", "set", "NPM_TOKEN", "--json");
        Assert.True(rotate.ExitCode == 0, rotate.ToString());
        Assert.Equal(2, JsonDocument.Parse(rotate.StdOut).RootElement.GetProperty("currentVersion").GetInt32());
        Assert.Equal("second-value", (await ReleasedToAsync("NPM_TOKEN", gitRef: "refs/tags/v1.0"))["NPM_TOKEN"]);

        // The policy alone: the broker keeps the current version, and no value is asked for.
        _cli.StdIn = "must-not-be-read";
        var policy = await Eci("secrets", "policy", "NPM_TOKEN", "--repo", "globex/app", "--ref", "refs/heads/release", "--environment", "prod");
        Assert.True(policy.ExitCode == 0, policy.ToString());
        Assert.Contains("version 2, unchanged", policy.StdOut);
        var shown = JsonDocument.Parse((await Eci("secrets", "show", "NPM_TOKEN", "--json")).StdOut).RootElement;
        Assert.Equal(2, shown.GetProperty("currentVersion").GetInt32());
        Assert.Equal(2, shown.GetProperty("versions").GetArrayLength());
        Assert.Equal("prod", shown.GetProperty("environment").GetString());
        Assert.Empty(await ReleasedToAsync("NPM_TOKEN")); // acme/widgets no longer qualifies

        var audit = await Eci("secrets", "audit", "--secret", "NPM_TOKEN", "--json");
        Assert.True(audit.ExitCode == 0, audit.ToString());
        var actions = JsonDocument.Parse(audit.StdOut).RootElement.EnumerateArray().Select(e => e.GetProperty("action").GetString()).ToList();
        // The last line: acme/widgets' job was refused NPM_TOKEN after the policy change.
        Assert.Equal(["secret.created", "policy.changed", "secret.updated", "policy.changed", "exchange.denied"], actions);
        var table = await Eci("secrets", "audit", "--action", "policy.changed");
        Assert.Contains("environment=prod", table.StdOut);
        Assert.DoesNotContain("exchange.denied", table.StdOut);

        var delete = await Eci("secrets", "delete", "NPM_TOKEN");
        Assert.True(delete.ExitCode == 0, delete.ToString());
        var gone = await Eci("secrets", "show", "NPM_TOKEN");
        Assert.Equal(ExitCodes.NotFound, gone.ExitCode);
        Assert.Contains("No secret named 'NPM_TOKEN'", gone.StdErr);
        Assert.Equal(ExitCodes.NotFound, (await Eci("secrets", "delete", "NPM_TOKEN")).ExitCode);
        Assert.Equal(ExitCodes.NotFound, (await Eci("secrets", "policy", "NPM_TOKEN", "--repo", "**", "--ref", "**")).ExitCode);

        // No answer, table or JSON, and no log line of the broker ever carried a value.
        foreach (var run in new[] { set, list, listJson, show, rotate, policy, audit, delete })
        {
            Assert.DoesNotContain(Value, run.StdOut + run.StdErr);
            Assert.DoesNotContain("second-value", run.StdOut + run.StdErr);
        }
        Assert.DoesNotContain(_broker.Logs.Lines, l => l.Contains(Value) || l.Contains("second-value"));
    }

    [Fact]
    public async Task The_value_cannot_be_given_as_an_argument_or_typed_at_a_terminal()
    {
        _cli.StdIn = "from-stdin";
        var positional = await Eci("secrets", "set", "DEPLOY_KEY", "hunter2-argument", "--repo", "**", "--ref", "**");
        Assert.Equal(ExitCodes.Usage, positional.ExitCode);
        Assert.Contains("read from stdin only", positional.StdErr);
        Assert.DoesNotContain("hunter2-argument", positional.StdErr); // the refusal must not print it into a CI log

        var option = await Eci("secrets", "set", "DEPLOY_KEY", "--value=hunter2-argument", "--repo", "**", "--ref", "**");
        Assert.Equal(ExitCodes.Usage, option.ExitCode);
        Assert.Contains("has no option --value", option.StdErr);
        Assert.DoesNotContain("hunter2-argument", option.StdErr);

        _cli.StdInIsTerminal = true;
        var terminal = await Eci("secrets", "set", "DEPLOY_KEY", "--repo", "**", "--ref", "**");
        Assert.Equal(ExitCodes.Usage, terminal.ExitCode);
        Assert.Contains("stdin is a terminal: pipe the value in", terminal.StdErr);

        _cli.StdInIsTerminal = false;
        _cli.StdIn = "\n";
        var empty = await Eci("secrets", "set", "DEPLOY_KEY", "--repo", "**", "--ref", "**");
        Assert.Equal(ExitCodes.Usage, empty.ExitCode);
        Assert.Contains("The value on stdin is empty", empty.StdErr);

        _cli.StdIn = "x";
        var newWithoutPolicy = await Eci("secrets", "set", "DEPLOY_KEY");
        Assert.Equal(ExitCodes.Usage, newWithoutPolicy.ExitCode);
        Assert.Contains("a new secret needs its policy", newWithoutPolicy.StdErr);

        Assert.Equal("[]", (await Eci("secrets", "list", "--json")).StdOut.Trim()); // nothing reached the broker
    }

    [Fact]
    public async Task Invalid_input_lists_the_brokers_field_errors()
    {
        _cli.StdIn = "v";
        var run = await Eci("secrets", "set", "9-not-a-name", "--repo", "acme/has space", "--ref", "refs/heads/main");
        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains("name: must start with a letter", run.StdErr);
        Assert.Contains("repositories: [0] must not contain whitespace", run.StdErr);
    }

    [Fact]
    public async Task Bad_token_missing_token_and_unreachable_broker_are_explained()
    {
        _cli.Environment["ECI_SECRETS_TOKEN"] = "not-the-admin-token";
        var bad = await Eci("secrets", "list");
        Assert.Equal(ExitCodes.Auth, bad.ExitCode);
        Assert.Contains("The secrets admin token was refused; set it with `eci config set --secrets-token -`", bad.StdErr);
        Assert.DoesNotContain("   at ", bad.StdErr);

        _cli.Environment.Remove("ECI_SECRETS_TOKEN");
        var none = await Eci("secrets", "list");
        Assert.Equal(ExitCodes.Usage, none.ExitCode);
        Assert.Contains("No secrets admin token configured", none.StdErr);

        _cli.Environment["ECI_SECRETS_TOKEN"] = BrokerTestApp.AdminToken;
        _cli.Handler = null;
        _cli.Environment["ECI_SECRETS_SERVER"] = "http://127.0.0.1:1";
        var down = await Eci("secrets", "list");
        Assert.Equal(ExitCodes.Unreachable, down.ExitCode);
        Assert.Contains("Cannot reach the secrets broker at http://127.0.0.1:1/", down.StdErr);
        Assert.Contains("ECI_SECRETS_SERVER", down.StdErr);
    }

    [Fact]
    public async Task Config_stores_the_admin_tokens_from_stdin_privately_and_show_masks_them()
    {
        _cli.Environment.Clear();
        _cli.StdIn = "ecis_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\ncache-admin-token-0123456789\n";
        var set = await Eci("config", "set", "--server", "http://127.0.0.1:5180", "--secrets-token", "-", "--cache-token", "-");
        Assert.True(set.ExitCode == 0, set.ToString());
        var file = Path.Combine(_cli.Directory, "config.json");
        if (OperatingSystem.IsLinux()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        var stored = JsonDocument.Parse(await File.ReadAllTextAsync(file)).RootElement;
        Assert.Equal("ecis_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", stored.GetProperty("secretsToken").GetString());
        Assert.Equal("cache-admin-token-0123456789", stored.GetProperty("cacheToken").GetString());
        Assert.DoesNotContain("abcdefghij", set.StdOut + set.StdErr);

        var show = JsonDocument.Parse((await Eci("config", "show", "--json")).StdOut).RootElement;
        Assert.Equal("http://127.0.0.1:5180", show.GetProperty("secretsServer").GetString());
        Assert.Equal("same as server", show.GetProperty("secretsServerSource").GetString());
        Assert.Equal("ecis_...(48 characters)", show.GetProperty("secretsToken").GetString());
        Assert.Equal("cach...(28 characters)", show.GetProperty("cacheToken").GetString());

        _cli.Environment["ECI_SECRETS_SERVER"] = "http://broker.example:8080";
        _cli.Environment["ECI_SECRETS_TOKEN"] = "from-the-environment-token";
        var overridden = JsonDocument.Parse((await Eci("config", "show", "--json")).StdOut).RootElement;
        Assert.Equal("http://broker.example:8080", overridden.GetProperty("secretsServer").GetString());
        Assert.Equal("environment", overridden.GetProperty("secretsServerSource").GetString());
        Assert.Equal("environment", overridden.GetProperty("secretsTokenSource").GetString());
        Assert.Equal("http://127.0.0.1:5180", overridden.GetProperty("cacheServer").GetString());

        var text = await Eci("config", "show");
        Assert.Contains("secrets token", text.StdOut);
        Assert.DoesNotContain("from-the-environment-token", text.StdOut);
    }
}
