using System.ComponentModel;
using System.Globalization;
using System.Text.Json;
using EphemeralCI.Cli.Api;
using EphemeralCI.Cli.Hosting;
using Spectre.Console;
using Spectre.Console.Cli;
using Spectre.Console.Rendering;

namespace EphemeralCI.Cli.Commands;

public sealed class CacheListSettings : CacheServerSettings
{
    [CommandOption("--repo <OWNER/NAME>")]
    [Description("Only entries of this repository")]
    public string? Repository { get; set; }

    [CommandOption("--scope <REF>")]
    [Description("Only entries saved from this ref, e.g. refs/heads/main")]
    public string? Scope { get; set; }

    [CommandOption("--key-prefix <PREFIX>")]
    [Description("Only entries whose key starts with this")]
    public string? KeyPrefix { get; set; }

    [CommandOption("--limit <N>")]
    [Description("At most this many entries (1 to 500, default 100), newest first")]
    public int? Limit { get; set; }

    [CommandOption("--offset <N>")]
    [Description("Skip this many entries, for paging")]
    public int? Offset { get; set; }
}

public sealed class CacheEntryIdSettings : CacheServerSettings
{
    [CommandArgument(0, "<ID>")]
    [Description("The entry's id (from `eci cache list`)")]
    public long Id { get; set; }
}

public sealed class CacheUsageCommand(EciContext context) : EciCommand<CacheServerSettings>(context)
{
    protected override async Task<int> RunAsync(CacheServerSettings settings, CancellationToken ct)
    {
        using var api = ConnectCache(settings);
        var result = await api.CacheUsageAsync(ct);
        if (settings.Json) WriteJson(result.Json);
        else if (result.Value.Count == 0) Context.Out.MarkupLine("[grey]The cache is empty.[/]");
        else Context.Out.Write(CacheTables.Usage(result.Value));
        return ExitCodes.Success;
    }
}

public sealed class CacheListCommand(EciContext context) : EciCommand<CacheListSettings>(context)
{
    protected override async Task<int> RunAsync(CacheListSettings settings, CancellationToken ct)
    {
        using var api = ConnectCache(settings);
        var result = await api.ListCacheEntriesAsync(settings.Repository, settings.Scope, settings.KeyPrefix, settings.Limit, settings.Offset, ct);
        if (settings.Json) WriteJson(result.Json);
        else if (result.Value.Count == 0) Context.Out.MarkupLine("[grey]No cache entries.[/]");
        else Context.Out.Write(CacheTables.Entries(result.Value));
        return ExitCodes.Success;
    }
}

public sealed class CacheDeleteCommand(EciContext context) : EciCommand<CacheEntryIdSettings>(context)
{
    protected override async Task<int> RunAsync(CacheEntryIdSettings settings, CancellationToken ct)
    {
        using var api = ConnectCache(settings);
        try
        {
            await api.DeleteCacheEntryAsync(settings.Id, ct);
        }
        catch (EciApiException ex) when (ex.Problem.Status == 404)
        {
            // The cache answers a bare 404 for an unknown id, so it cannot be told from a wrong address by its body.
            throw new CliException($"There is no cache entry {settings.Id} (or {api.Server} is not the cache).", ExitCodes.NotFound,
                ["`eci cache list` shows the entries and their ids; `eci config show` shows the cache's address."]);
        }
        if (settings.Json) WriteJson(JsonSerializer.Serialize(new { id = settings.Id, deleted = true }, EciApiClient.Json));
        else Context.Out.MarkupLine($"Cache entry [bold]{settings.Id}[/] and its object are deleted.");
        return ExitCodes.Success;
    }
}

/// <summary>The cache commands' tables, apart from the commands so they can be tested without a cache.</summary>
internal static class CacheTables
{
    public static IRenderable Usage(IReadOnlyList<RepositoryUsage> rows)
    {
        var table = new Table().Border(TableBorder.Simple).AddColumns("REPOSITORY", "ENTRIES", "RESERVED", "QUARANTINED", "SIZE", "QUOTA", "USED");
        foreach (var r in rows)
        {
            var used = r.QuotaBytes > 0 ? (double)r.Bytes / r.QuotaBytes : 0;
            var percent = (used * 100).ToString("0", CultureInfo.InvariantCulture) + "%";
            table.AddRow(Markup.Escape(r.Repository), Count(r.Entries), Count(r.Reserved), r.Quarantined > 0 ? $"[yellow]{Count(r.Quarantined)}[/]" : "0",
                Bytes(r.Bytes), r.QuotaBytes > 0 ? Bytes(r.QuotaBytes) : "-", r.QuotaBytes <= 0 ? "-" : used >= 0.9 ? $"[red]{percent}[/]" : percent);
        }
        return table;
    }

    public static IRenderable Entries(IReadOnlyList<CacheEntryView> entries)
    {
        var table = new Table().Border(TableBorder.Simple).AddColumns("ID", "REPOSITORY", "SCOPE", "KEY", "STATE", "SIZE", "CREATED", "LAST USED");
        foreach (var e in entries)
        {
            var state = e.State switch
            {
                "Committed" => "committed",
                "Quarantined" => "[yellow]quarantined[/]",
                _ => Markup.Escape(e.State.ToLowerInvariant()),
            };
            table.AddRow(Count(e.Id), Markup.Escape(e.Repository), Markup.Escape(e.Scope), Markup.Escape(e.Key), state, Bytes(e.SizeBytes),
                Render.Time(e.CreatedAt), Render.Time(e.LastAccessedAt));
        }
        return table;
    }

    private static string Count(long n) => n.ToString(CultureInfo.InvariantCulture);

    /// <summary>Binary units, one decimal: 1536 → "1.5 KiB".</summary>
    public static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        var unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0 ? $"{bytes} B" : value.ToString("0.0", CultureInfo.InvariantCulture) + " " + units[unit];
    }
}
