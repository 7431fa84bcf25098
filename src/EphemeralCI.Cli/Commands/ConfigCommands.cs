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
    [Description("The intake's URL, e.g. http://localhost:5080")]
    public string? Server { get; set; }

    [CommandOption("--key <KEY>")]
    [Description("The API key; '-' reads it from stdin so it never appears in a command line or shell history")]
    public string? Key { get; set; }
}

public sealed class ConfigSetCommand(EciContext context) : EciCommand<ConfigSetSettings>(context)
{
    protected override Task<int> RunAsync(ConfigSetSettings settings, CancellationToken ct)
    {
        if (settings.Server is null && settings.Key is null)
        {
            throw new CliException("Nothing to set: pass --server URL and/or --key - (the key is then read from stdin).", ExitCodes.Usage);
        }
        var store = new ConfigStore(Context.ConfigPath);
        var config = store.Load();
        if (settings.Server is not null) config = config with { Server = ConfigStore.ParseServer(settings.Server).ToString().TrimEnd('/') };
        if (settings.Key is not null)
        {
            var key = settings.Key == EciApp.StdinMarker ? Context.StdIn.ReadLine()?.Trim() : settings.Key.Trim();
            if (string.IsNullOrEmpty(key) || key.Any(char.IsWhiteSpace))
            {
                throw new CliException("The API key is empty or contains spaces; pass the key created by `eci keys create` (with --key -, on stdin).", ExitCodes.Usage);
            }
            config = config with { ApiKey = key };
        }
        store.Save(config);
        Context.Err.MarkupLine($"Saved to [bold]{Markup.Escape(store.Path)}[/] (readable only by you).");
        return Task.FromResult(ConfigShowCommand.Show(Context, settings.Json, null));
    }
}

public sealed class ConfigShowCommand(EciContext context) : EciCommand<OutputSettings>(context)
{
    protected override Task<int> RunAsync(OutputSettings settings, CancellationToken ct) => Task.FromResult(Show(Context, settings.Json, null));

    internal static int Show(EciContext context, bool json, string? serverOption)
    {
        var resolved = new ConfigStore(context.ConfigPath).Resolve(context.Environment, serverOption);
        var masked = ConfigStore.Mask(resolved.ApiKey);
        if (json)
        {
            context.StdOut.WriteLine(JsonSerializer.Serialize(new
            {
                server = resolved.Server,
                serverSource = Source(resolved.ServerSource),
                apiKey = resolved.ApiKey is null ? null : masked,
                apiKeySource = Source(resolved.ApiKeySource),
                configFile = resolved.ConfigPath,
            }, Api.EciApiClient.Json));
            return ExitCodes.Success;
        }
        var grid = new Grid().AddColumn().AddColumn().AddColumn();
        grid.AddRow("[bold]server[/]", Markup.Escape(resolved.Server ?? "(not set)"), $"[grey]{Source(resolved.ServerSource)}[/]");
        grid.AddRow("[bold]api key[/]", Markup.Escape(masked), $"[grey]{Source(resolved.ApiKeySource)}[/]");
        grid.AddRow("[bold]config file[/]", Markup.Escape(resolved.ConfigPath), "");
        context.Out.Write(grid);
        return ExitCodes.Success;
    }

    private static string Source(ValueSource source) => source switch
    {
        ValueSource.Environment => "environment",
        ValueSource.ConfigFile => "config file",
        ValueSource.CommandLine => "command line",
        _ => "not set",
    };
}
