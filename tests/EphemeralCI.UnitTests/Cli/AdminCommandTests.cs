using EphemeralCI.Cli;
using EphemeralCI.Cli.Api;
using EphemeralCI.Cli.Commands;
using EphemeralCI.Cli.Configuration;
using EphemeralCI.Cli.Hosting;
using Spectre.Console;
using Spectre.Console.Rendering;
using Xunit;

namespace EphemeralCI.UnitTests.Cli;

/// <summary>The pure parts of `eci secrets` and `eci cache`: argument checks, reading the value, messages, tables.</summary>
public sealed class AdminCommandTests
{
    [Theory]
    [InlineData("value\n", "value")]
    [InlineData("value\r\n", "value")]
    [InlineData("value", "value")]
    [InlineData("line1\nline2\n\n", "line1\nline2\n")] // only one newline goes: the rest may be the value's
    [InlineData("\n", "")]
    public void One_trailing_newline_is_stripped(string stdin, string expected) => Assert.Equal(expected, SecretInput.StripOneNewline(stdin));

    [Theory]
    [InlineData("secrets set NAME --repo a/* --ref refs/heads/main")]
    [InlineData("secrets set NAME --repo=a/* --ref=** --environment prod --json")]
    [InlineData("secrets set NAME")]
    [InlineData("secrets policy NAME --repo ** --ref ** --secrets-server http://x")]
    [InlineData("secrets list")]
    [InlineData("jobs show abc extra")]
    public void Command_lines_without_a_value_pass(string line) => Assert.Null(SecretInput.RefuseValueOnCommandLine(line.Split(' ')));

    [Theory]
    [InlineData("secrets set NAME hunter2 --repo a --ref b", "takes one argument")]
    [InlineData("secrets set NAME --repo a --ref b hunter2", "takes one argument")]
    [InlineData("secrets set NAME --value hunter2", "has no option --value")]
    [InlineData("secrets set NAME --value=hunter2", "has no option --value")]
    [InlineData("secrets set NAME -", "takes one argument")]
    [InlineData("secrets policy NAME hunter2 --repo a --ref b", "`eci secrets policy` takes one argument")]
    public void A_value_on_the_command_line_is_refused_without_repeating_it(string line, string expected)
    {
        var message = SecretInput.RefuseValueOnCommandLine(line.Split(' '));
        Assert.NotNull(message);
        Assert.Contains(expected, message);
        Assert.Contains("read from stdin only", message);
        Assert.DoesNotContain("hunter2", message);
    }

    [Fact]
    public void A_terminal_on_stdin_or_an_empty_stdin_is_refused()
    {
        var terminal = Assert.Throws<CliException>(() => SecretInput.ReadValue(Context("typed?", terminal: true)));
        Assert.Equal(ExitCodes.Usage, terminal.ExitCode);
        Assert.Contains("stdin is a terminal", terminal.Message);

        var empty = Assert.Throws<CliException>(() => SecretInput.ReadValue(Context("\n", terminal: false)));
        Assert.Contains("empty", empty.Message);

        Assert.Equal("v a l u e", SecretInput.ReadValue(Context("v a l u e\n", terminal: false)));
    }

    [Theory]
    [InlineData(new[] { "a/*" }, new[] { "refs/heads/main" }, null, false, true)]
    [InlineData(new string[0], new string[0], null, false, true)]       // set: keep the current policy
    [InlineData(new string[0], new string[0], null, true, false)]       // policy: needs one
    [InlineData(new[] { "a/*" }, new string[0], null, false, false)]    // half a policy
    [InlineData(new string[0], new string[0], "prod", false, false)]    // an environment alone would silently keep old patterns
    public void A_policy_is_given_whole_or_not_at_all(string[] repos, string[] refs, string? environment, bool required, bool ok)
    {
        var settings = new SecretPolicySettings { Name = "X", Repositories = repos, Refs = refs, Environment = environment };
        var error = Record.Exception(() => SecretInput.CheckPolicyOptions(settings, required));
        if (ok) Assert.Null(error);
        else Assert.Equal(ExitCodes.Usage, Assert.IsType<CliException>(error).ExitCode);
    }

    [Fact]
    public void Credentials_given_as_dash_are_marked_for_stdin()
    {
        var args = EciApp.MarkStdin(["config", "set", "--key", "-", "--secrets-token", "-", "--cache-token=-", "--server", "-"]);
        Assert.Equal(["config", "set", "--key", EciApp.StdinMarker, "--secrets-token", EciApp.StdinMarker, "--cache-token=" + EciApp.StdinMarker, "--server", "-"], args);
    }

    [Fact]
    public void A_refused_admin_token_names_the_service_and_how_to_set_it()
    {
        var problem = Problem.Parse(401, """{"title":"Unauthorized","detail":"A valid credential is required."}""");
        var (secrets, details, code) = EciCommand<OutputSettings>.Describe(new EciApiException(problem, "GET", "/api/v1/admin/secrets", ApiTarget.SecretsBroker));
        Assert.Equal(ExitCodes.Auth, code);
        Assert.Equal("The secrets admin token was refused; set it with `eci config set --secrets-token -` (read from stdin) or ECI_SECRETS_TOKEN.", secrets);
        Assert.Equal(["The secrets broker said: A valid credential is required."], details);

        var (cache, _, _) = EciCommand<OutputSettings>.Describe(new EciApiException(problem, "GET", "/cache/admin/usage", ApiTarget.Cache));
        Assert.StartsWith("The cache admin token was refused; set it with `eci config set --cache-token -`", cache);

        // The intake's own message is unchanged.
        var (intake, _, _) = EciCommand<OutputSettings>.Describe(new EciApiException(problem, "GET", "/api/v1/jobs"));
        Assert.StartsWith("The server refused the API key", intake);
    }

    [Fact]
    public void A_404_without_problem_details_from_the_cache_says_it_may_not_be_the_cache()
    {
        var (message, _, code) = EciCommand<OutputSettings>.Describe(new EciApiException(Problem.Parse(404, ""), "GET", "/cache/admin/usage", ApiTarget.Cache));
        Assert.Equal(ExitCodes.Unreachable, code);
        Assert.Contains("an EphemeralCI cache", message);
    }

    [Fact]
    public void Secrets_and_cache_default_to_the_server_and_can_each_be_moved()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("eci-config-").FullName, "config.json");
        var store = new ConfigStore(path);
        store.Save(new CliConfig { Server = "http://127.0.0.1:5180", CacheServer = "http://cache.example", CacheToken = "file-token" });
        var env = new Dictionary<string, string> { ["ECI_SECRETS_TOKEN"] = " env-token " };

        var resolved = store.Resolve(env.GetValueOrDefault, null);
        Assert.Equal(new ResolvedService("http://127.0.0.1:5180", ValueSource.ServerDefault, "env-token", ValueSource.Environment), resolved.Secrets);
        Assert.Equal(new ResolvedService("http://cache.example", ValueSource.ConfigFile, "file-token", ValueSource.ConfigFile), resolved.Cache);

        env["ECI_SECRETS_SERVER"] = "http://broker.example";
        Assert.Equal("http://broker.example", store.Resolve(env.GetValueOrDefault, null).Secrets.Server);
        var option = store.Resolve(env.GetValueOrDefault, null, secretsServerOption: "http://option.example", cacheServerOption: "http://c2.example");
        Assert.Equal((ValueSource.CommandLine, ValueSource.CommandLine), (option.Secrets.ServerSource, option.Cache.ServerSource));
        Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
    }

    [Theory]
    [InlineData(null, null, null, null, null, "cache/admin/entries")]
    [InlineData("acme/widgets", null, null, null, null, "cache/admin/entries?repository=acme%2Fwidgets")]
    [InlineData("acme/widgets", "refs/heads/main", "npm-", 50, 100, "cache/admin/entries?repository=acme%2Fwidgets&scope=refs%2Fheads%2Fmain&keyPrefix=npm-&limit=50&offset=100")]
    public void Cache_list_options_become_the_admin_APIs_query(string? repo, string? scope, string? prefix, int? limit, int? offset, string expected) =>
        Assert.Equal(expected, EciApiClient.CacheEntriesPath(repo, scope, prefix, limit, offset));

    [Theory]
    [InlineData(0, "0 B")]
    [InlineData(1023, "1023 B")]
    [InlineData(1536, "1.5 KiB")]
    [InlineData(10L * 1024 * 1024 * 1024, "10.0 GiB")]
    public void Sizes_are_shown_in_binary_units(long bytes, string expected) => Assert.Equal(expected, CacheTables.Bytes(bytes));

    [Fact]
    public void Usage_and_entry_tables_show_sizes_quota_and_state()
    {
        var usage = Render(CacheTables.Usage([new RepositoryUsage("acme/widgets", 3, 1, 2, 1536L * 1024 * 1024, 2048L * 1024 * 1024)]));
        Assert.Contains("acme/widgets", usage);
        Assert.Contains("1.5 GiB", usage);
        Assert.Contains("2.0 GiB", usage);
        Assert.Contains("75%", usage);

        var at = new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);
        var entries = Render(CacheTables.Entries([new CacheEntryView(42, "acme/widgets", "refs/heads/main", "npm-linux-abc", "v1", "Quarantined", 2048, null, at, null, at)]));
        Assert.Contains("42", entries);
        Assert.Contains("npm-linux-abc", entries);
        Assert.Contains("quarantined", entries);
        Assert.Contains("2.0 KiB", entries);
    }

    private static string Render(IRenderable renderable)
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Out = new AnsiConsoleOutput(writer) });
        console.Profile.Width = 250;
        console.Write(renderable);
        return writer.ToString();
    }

    private static EciContext Context(string stdin, bool terminal) => new()
    {
        Out = AnsiConsole.Console,
        Err = AnsiConsole.Console,
        StdOut = TextWriter.Null,
        StdErr = TextWriter.Null,
        StdIn = new StringReader(stdin),
        StdInIsTerminal = terminal,
        Environment = _ => null,
        ConfigPath = "/nonexistent/config.json",
        Interrupts = new ProcessInterruptSource(),
    };
}
