using System.ComponentModel;
using System.Text.Json;
using EphemeralCI.Cli.Configuration;
using EphemeralCI.Cli.Hosting;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EphemeralCI.Cli.Commands;

public sealed class ConfigSetSettings : OutputSettings
{
    [CommandOption("--server <URL>")]
    [Description("The server's URL (the intake, or the all-in-one server), e.g. http://127.0.0.1:5180")]
    public string? Server { get; set; }

    [CommandOption("--key <KEY>")]
    [Description("The API key; '-' reads it from stdin so it never appears in a command line or shell history")]
    public string? Key { get; set; }

    [CommandOption("--secrets-server <URL>")]
    [Description("The secrets broker's URL when it is not the server's (AppHost topology)")]
    public string? SecretsServer { get; set; }

    [CommandOption("--secrets-token <TOKEN>")]
    [Description("The secrets broker's admin token; '-' reads it from stdin")]
    public string? SecretsToken { get; set; }

    [CommandOption("--cache-server <URL>")]
    [Description("The cache's URL when it is not the server's (AppHost topology)")]
    public string? CacheServer { get; set; }

    [CommandOption("--cache-token <TOKEN>")]
    [Description("The cache's admin token; '-' reads it from stdin")]
    public string? CacheToken { get; set; }
}

public sealed class ConfigSetCommand(EciContext context) : EciCommand<ConfigSetSettings>(context)
{
    protected override Task<int> RunAsync(ConfigSetSettings settings, CancellationToken ct)
    {
        if (settings is { Server: null, Key: null, SecretsServer: null, SecretsToken: null, CacheServer: null, CacheToken: null })
        {
            throw new CliException("Nothing to set: pass --server URL and/or --key - (the key is then read from stdin); see `eci config set --help`.", ExitCodes.Usage);
        }
        var store = new ConfigStore(Context.ConfigPath);
        var config = store.Load();
        static string Url(string value) => ConfigStore.ParseServer(value).ToString().TrimEnd('/');
        if (settings.Server is not null) config = config with { Server = Url(settings.Server) };
        if (settings.SecretsServer is not null) config = config with { SecretsServer = Url(settings.SecretsServer) };
        if (settings.CacheServer is not null) config = config with { CacheServer = Url(settings.CacheServer) };
        // Credentials given as '-' are read one line each from stdin, in this order.
        if (settings.Key is not null) config = config with { ApiKey = Credential(settings.Key, "API key", "the key created by `eci keys create`") };
        if (settings.SecretsToken is not null) config = config with { SecretsToken = Credential(settings.SecretsToken, "secrets admin token", "the broker's SecretsBroker:AdminToken") };
        if (settings.CacheToken is not null) config = config with { CacheToken = Credential(settings.CacheToken, "cache admin token", "the cache's Cache:AdminToken") };
        store.Save(config);
        Context.Err.MarkupLine($"Saved to [bold]{Markup.Escape(store.Path)}[/] (readable only by you).");
        return Task.FromResult(ConfigShowCommand.Show(Context, settings.Json, null));
    }

    private string Credential(string given, string what, string which)
    {
        var value = given == EciApp.StdinMarker ? Context.StdIn.ReadLine()?.Trim() : given.Trim();
        if (string.IsNullOrEmpty(value) || value.Any(char.IsWhiteSpace))
        {
            throw new CliException($"The {what} is empty or contains spaces; pass {which} (with '-', on stdin).", ExitCodes.Usage);
        }
        return value;
    }
}

public sealed class ConfigShowCommand(EciContext context) : EciCommand<OutputSettings>(context)
{
    protected override Task<int> RunAsync(OutputSettings settings, CancellationToken ct) => Task.FromResult(Show(Context, settings.Json, null));

    internal static int Show(EciContext context, bool json, string? serverOption)
    {
        var resolved = new ConfigStore(context.ConfigPath).Resolve(context.Environment, serverOption);
        var (secrets, cache) = (resolved.Secrets, resolved.Cache);
        if (json)
        {
            context.StdOut.WriteLine(JsonSerializer.Serialize(new
            {
                server = resolved.Server,
                serverSource = Source(resolved.ServerSource),
                apiKey = resolved.ApiKey is null ? null : ConfigStore.Mask(resolved.ApiKey),
                apiKeySource = Source(resolved.ApiKeySource),
                secretsServer = secrets.Server,
                secretsServerSource = Source(secrets.ServerSource),
                secretsToken = secrets.Token is null ? null : ConfigStore.Mask(secrets.Token),
                secretsTokenSource = Source(secrets.TokenSource),
                cacheServer = cache.Server,
                cacheServerSource = Source(cache.ServerSource),
                cacheToken = cache.Token is null ? null : ConfigStore.Mask(cache.Token),
                cacheTokenSource = Source(cache.TokenSource),
                configFile = resolved.ConfigPath,
            }, Api.EciApiClient.Json));
            return ExitCodes.Success;
        }
        var grid = new Grid().AddColumn().AddColumn().AddColumn();
        void Row(string name, string value, ValueSource source) => grid.AddRow($"[bold]{name}[/]", Markup.Escape(value), $"[grey]{Source(source)}[/]");
        Row("server", resolved.Server ?? "(not set)", resolved.ServerSource);
        Row("api key", ConfigStore.Mask(resolved.ApiKey), resolved.ApiKeySource);
        Row("secrets server", secrets.Server ?? "(not set)", secrets.ServerSource);
        Row("secrets token", ConfigStore.Mask(secrets.Token), secrets.TokenSource);
        Row("cache server", cache.Server ?? "(not set)", cache.ServerSource);
        Row("cache token", ConfigStore.Mask(cache.Token), cache.TokenSource);
        grid.AddRow("[bold]config file[/]", Markup.Escape(resolved.ConfigPath), "");
        context.Out.Write(grid);
        return ExitCodes.Success;
    }

    private static string Source(ValueSource source) => source switch
    {
        ValueSource.Environment => "environment",
        ValueSource.ConfigFile => "config file",
        ValueSource.CommandLine => "command line",
        ValueSource.ServerDefault => "same as server",
        _ => "not set",
    };
}
