using System.ComponentModel;
using EphemeralCI.Cli.Hosting;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EphemeralCI.Cli.Commands;

public sealed class KeysCreateSettings : ServerSettings
{
    [CommandOption("--name <NAME>")]
    [Description("What the key is for, e.g. 'github-actions'")]
    public string? Name { get; set; }

    [CommandOption("--scope <SCOPE>")]
    [Description("submit, read or admin; repeat for several")]
    public string[] Scopes { get; set; } = [];
}

public sealed class KeyIdSettings : ServerSettings
{
    [CommandArgument(0, "<ID>")]
    [Description("The key's id (from `eci keys list`)")]
    public Guid Id { get; set; }
}

public sealed class KeysCreateCommand(EciContext context) : EciCommand<KeysCreateSettings>(context)
{
    protected override async Task<int> RunAsync(KeysCreateSettings settings, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(settings.Name))
        {
            throw new CliException("A key needs a name: --name NAME.", ExitCodes.Usage);
        }
        using var api = Connect(settings);
        var result = await api.CreateKeyAsync(settings.Name, settings.Scopes, ct);
        if (settings.Json)
        {
            WriteJson(result.Json);
            return ExitCodes.Success;
        }
        var key = result.Value;
        Context.Err.MarkupLine($"Created API key [bold]{Markup.Escape(key.Name)}[/] ({key.Id}) with scopes {Markup.Escape(string.Join(", ", key.Scopes))}.");
        Context.Err.MarkupLine("[yellow]This is the only time the key is shown; store it now:[/]");
        // The key alone on stdout, so `eci keys create ... > file` or `$(...)` captures just the key.
        Context.StdOut.WriteLine(key.Key);
        return ExitCodes.Success;
    }
}

public sealed class KeysListCommand(EciContext context) : EciCommand<ServerSettings>(context)
{
    protected override async Task<int> RunAsync(ServerSettings settings, CancellationToken ct)
    {
        using var api = Connect(settings);
        var result = await api.ListKeysAsync(ct);
        if (settings.Json)
        {
            WriteJson(result.Json);
            return ExitCodes.Success;
        }
        var table = new Table().Border(TableBorder.Simple).AddColumns("ID", "NAME", "PREFIX", "SCOPES", "CREATED", "LAST USED", "REVOKED");
        foreach (var k in result.Value)
        {
            table.AddRow(k.Id.ToString(), Markup.Escape(k.Name), Markup.Escape(k.Prefix), Markup.Escape(string.Join(",", k.Scopes)),
                Render.Time(k.CreatedAt), k.LastUsedAt is { } u ? Render.Time(u) : "", k.RevokedAt is { } r ? $"[red]{Render.Time(r)}[/]" : "");
        }
        Context.Out.Write(table);
        return ExitCodes.Success;
    }
}

public sealed class KeysRevokeCommand(EciContext context) : EciCommand<KeyIdSettings>(context)
{
    protected override async Task<int> RunAsync(KeyIdSettings settings, CancellationToken ct)
    {
        using var api = Connect(settings);
        await api.RevokeKeyAsync(settings.Id, ct);
        if (settings.Json) WriteJson(System.Text.Json.JsonSerializer.Serialize(new { id = settings.Id, revoked = true }, Api.EciApiClient.Json));
        else Context.Out.MarkupLine($"API key [bold]{settings.Id}[/] is revoked.");
        return ExitCodes.Success;
    }
}
