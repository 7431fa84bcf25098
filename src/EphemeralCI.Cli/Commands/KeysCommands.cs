using System.ComponentModel;
using EphemeralCI.Cli.Api;
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

    [CommandOption("--repo <GLOB>")]
    [Description("A repository the key may submit for and read, e.g. 'acme/widgets' or 'acme/*'; repeat for several. Required unless --scope admin")]
    public string[] Repositories { get; set; } = [];

    [CommandOption("--ref <GLOB>")]
    [Description("A ref the key may submit for, e.g. 'refs/heads/main' or 'refs/heads/**'; repeat for several (default: every ref)")]
    public string[] Refs { get; set; } = [];

    [CommandOption("--template <NAME>")]
    [Description("A runner template the key may use; repeat for several (default: any)")]
    public string[] Templates { get; set; } = [];

    [CommandOption("--environment <NAME>")]
    [Description("An environment the key may name, e.g. 'production'; repeat for several (default: none)")]
    public string[] Environments { get; set; } = [];
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
        if (settings.Repositories.Length == 0 && !settings.Scopes.Contains("admin"))
        {
            throw new CliException("A key needs the repositories it may claim: --repo GLOB (repeatable, e.g. --repo acme/widgets).", ExitCodes.Usage,
                ["Only an admin key (--scope admin) is not bound to repositories."]);
        }
        using var api = Connect(settings);
        var result = await api.CreateKeyAsync(
            new CreateApiKeyRequest(settings.Name, settings.Scopes, settings.Repositories, NullIfEmpty(settings.Refs), settings.Templates, settings.Environments), ct);
        if (settings.Json)
        {
            WriteJson(result.Json);
            return ExitCodes.Success;
        }
        var key = result.Value;
        Context.Err.MarkupLine($"Created API key [bold]{Markup.Escape(key.Name)}[/] ({key.Id}) with scopes {Markup.Escape(string.Join(", ", key.Scopes))}.");
        if (key.Repositories is { Count: > 0 })
        {
            Context.Err.MarkupLine(Markup.Escape($"It may claim repositories {Render.Globs(key.Repositories)}, refs {Render.Globs(key.Refs)}, " +
                $"templates {Render.Globs(key.Templates, "any")}, environments {Render.Globs(key.Environments, "none")}."));
        }
        Context.Err.MarkupLine("[yellow]This is the only time the key is shown; store it now:[/]");
        // The key alone on stdout, so `eci keys create ... > file` or `$(...)` captures just the key.
        Context.StdOut.WriteLine(key.Key);
        return ExitCodes.Success;
    }

    private static string[]? NullIfEmpty(string[] values) => values.Length == 0 ? null : values;
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
        var table = new Table().Border(TableBorder.Simple)
            .AddColumns("ID", "NAME", "PREFIX", "SCOPES", "REPOSITORIES", "REFS", "TEMPLATES", "ENVIRONMENTS", "CREATED", "LAST USED", "REVOKED");
        foreach (var k in result.Value)
        {
            var admin = k.Scopes.Contains("admin");
            var repositories = admin ? "(all)" : k.Bound == false ? "[red]unbound: replace this key[/]" : Markup.Escape(Render.Globs(k.Repositories));
            table.AddRow(k.Id.ToString(), Markup.Escape(k.Name), Markup.Escape(k.Prefix), Markup.Escape(string.Join(",", k.Scopes)),
                repositories, admin ? "" : Markup.Escape(Render.Globs(k.Refs)), admin ? "" : Markup.Escape(Render.Globs(k.Templates, "any")),
                admin ? "" : Markup.Escape(Render.Globs(k.Environments, "none")),
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
