using System.ComponentModel;
using EphemeralCI.Cli.Api;
using EphemeralCI.Cli.Hosting;
using EphemeralCI.Cli.Output;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EphemeralCI.Cli.Commands;

public sealed class JobsListSettings : ServerSettings
{
    [CommandOption("--status <STATUS>")]
    [Description("Only jobs in this state: queued, provisioning, running, succeeded, failed, cancelled, timed_out")]
    public string? Status { get; set; }

    [CommandOption("--repository <OWNER/NAME>")]
    [Description("Only jobs of this repository")]
    public string? Repository { get; set; }

    [CommandOption("--cursor <CURSOR>")]
    [Description("Continue after the previous list (the cursor it printed); fast however deep")]
    public string? Cursor { get; set; }

    [CommandOption("--page <N>")]
    [Description("Which page, from 1 (newest first); deprecated beyond the first few pages, use --cursor")]
    public int? Page { get; set; }

    [CommandOption("--page-size <N>")]
    [Description("Jobs per page (1 to 100, default 20)")]
    public int? PageSize { get; set; }
}

public class JobIdSettings : ServerSettings
{
    [CommandArgument(0, "<ID>")]
    [Description("The job's id")]
    public Guid Id { get; set; }
}

public sealed class JobLogsSettings : JobIdSettings
{
    [CommandOption("-f|--follow")]
    [Description("Stream the log until the job ends, and exit with the job's exit code")]
    public bool Follow { get; set; }

    [CommandOption("--raw")]
    [Description("Write the log's bytes as they are (escape sequences, the agent's line marker U+001E), for piping; by default control sequences other than colours are removed")]
    public bool Raw { get; set; }
}

public sealed class JobsListCommand(EciContext context) : EciCommand<JobsListSettings>(context)
{
    protected override async Task<int> RunAsync(JobsListSettings settings, CancellationToken ct)
    {
        using var api = Connect(settings);
        var result = await api.ListJobsAsync(settings.Status, settings.Repository, settings.Page, settings.PageSize, settings.Cursor, ct);
        if (settings.Json)
        {
            WriteJson(result.Json);
            return ExitCodes.Success;
        }
        var page = result.Value;
        var table = new Table().Border(TableBorder.Simple)
            .AddColumns("ID", "STATUS", "NAME", "REPOSITORY", "REF", "COMMIT", "CREATED");
        foreach (var job in page.Items)
        {
            table.AddRow(
                job.Id.ToString(), Render.Status(job.Status), Markup.Escape(job.Name ?? ""), Markup.Escape(job.Repository),
                Markup.Escape(job.Ref), Markup.Escape(job.CommitSha[..Math.Min(7, job.CommitSha.Length)]), Render.Time(job.CreatedAt));
        }
        if (page.Items.Count == 0) Context.Out.MarkupLine("[grey]No jobs.[/]");
        else Context.Out.Write(table);
        if (page.Page is { } number && page.TotalCount is { } total)
        {
            var pages = Math.Max(1, (total + page.PageSize - 1) / page.PageSize);
            Context.Out.MarkupLine($"[grey]page {number} of {pages} ({total} jobs)[/]");
        }
        if (page.NextCursor is { } next) Context.Out.MarkupLine($"[grey]older: eci jobs list --cursor {Markup.Escape(next)}[/]");
        return ExitCodes.Success;
    }
}

public sealed class JobsShowCommand(EciContext context) : EciCommand<JobIdSettings>(context)
{
    protected override async Task<int> RunAsync(JobIdSettings settings, CancellationToken ct)
    {
        using var api = Connect(settings);
        var result = await api.GetJobAsync(settings.Id, ct);
        if (settings.Json)
        {
            WriteJson(result.Json);
            return ExitCodes.Success;
        }
        var job = result.Value;
        var grid = new Grid().AddColumn().AddColumn();
        void Row(string name, string? value) { if (value is not null) grid.AddRow($"[bold]{name}[/]", value); }
        Row("id", job.Id.ToString());
        Row("name", job.Name is null ? null : Markup.Escape(job.Name));
        Row("status", Render.Status(job.Status) + (job.StatusReason is { } r ? $" [grey]({Markup.Escape(r)})[/]" : ""));
        Row("exit code", job.ExitCode?.ToString());
        // Only a job retried after a lost runner has more than one attempt.
        Row("attempt", job.Attempt > 1 ? $"{job.Attempt} [grey](the runner of an earlier attempt was lost)[/]" : null);
        Row("repository", Markup.Escape(job.Repository));
        Row("ref", Markup.Escape(job.Ref));
        Row("commit", Markup.Escape(job.CommitSha));
        Row("template", Markup.Escape(job.RunnerTemplate));
        Row("timeout", $"{job.TimeoutSeconds}s");
        Row("created", Render.Time(job.CreatedAt));
        Row("started", job.StartedAt is { } s ? Render.Time(s) : null);
        Row("finished", job.FinishedAt is { } f ? Render.Time(f) : null);
        Context.Out.Write(grid);
        return ExitCodes.Success;
    }
}

public sealed class JobsEventsCommand(EciContext context) : EciCommand<JobIdSettings>(context)
{
    protected override async Task<int> RunAsync(JobIdSettings settings, CancellationToken ct)
    {
        using var api = Connect(settings);
        var result = await api.GetEventsAsync(settings.Id, ct);
        if (settings.Json)
        {
            WriteJson(result.Json);
            return ExitCodes.Success;
        }
        var table = new Table().Border(TableBorder.Simple).AddColumns("AT", "EVENT", "MESSAGE");
        foreach (var e in result.Value.Events)
        {
            table.AddRow(Render.Time(e.At), Markup.Escape(e.Type), JobFollower.Describe(e, null) ?? "");
        }
        Context.Out.Write(table);
        return ExitCodes.Success;
    }
}

public sealed class JobsLogsCommand(EciContext context) : EciCommand<JobLogsSettings>(context)
{
    protected override async Task<int> RunAsync(JobLogsSettings settings, CancellationToken ct)
    {
        using var api = Connect(settings);
        if (!settings.Follow)
        {
            var text = await api.GetLogTextAsync(settings.Id, ct);
            if (settings.Json) WriteJson(System.Text.Json.JsonSerializer.Serialize(new { jobId = settings.Id, log = text }, EciApiClient.Json));
            else if (settings.Raw) Context.StdOut.Write(text);
            else Context.StdOut.Write(JobLogWriter.Sanitize(text, Context.Out.Profile.Capabilities.Ansi));
            return ExitCodes.Success;
        }
        // Check the job exists first: a 404 is then a clear message instead of an empty stream.
        await api.GetJobAsync(settings.Id, ct);
        var follower = new JobFollower(api, Context)
        {
            LogOut = settings.Json ? Context.StdErr : Context.StdOut,
            Raw = settings.Raw,
            Styled = (settings.Json ? Context.Err : Context.Out).Profile.Capabilities.Ansi,
        };
        var end = await follower.FollowAsync(settings.Id, ct);
        var final = await api.GetJobAsync(settings.Id, ct);
        if (settings.Json) WriteJson(final.Json);
        RunCommand.ShowOutcome(Context, final.Value);
        return JobExitCodes.For(end.Status, end.ExitCode);
    }
}

public sealed class JobsCancelCommand(EciContext context) : EciCommand<JobIdSettings>(context)
{
    protected override async Task<int> RunAsync(JobIdSettings settings, CancellationToken ct)
    {
        using var api = Connect(settings);
        var result = await api.CancelJobAsync(settings.Id, ct);
        if (settings.Json) WriteJson(result.Json);
        else Context.Out.MarkupLine($"Job [bold]{result.Value.Id}[/] is {Render.Status(result.Value.Status)}; its runner is being destroyed.");
        return ExitCodes.Success;
    }
}

internal static class Render
{
    /// <summary>A key's bindings for people: the globs, or what an empty list means.</summary>
    public static string Globs(IReadOnlyList<string>? globs, string empty = "none") =>
        globs is { Count: > 0 } ? string.Join(",", globs) : empty;

    public static string Status(string status) => status switch
    {
        "succeeded" => "[green]succeeded[/]",
        "failed" or "timed_out" => $"[red]{status}[/]",
        "cancelled" => "[yellow]cancelled[/]",
        "running" => "[blue]running[/]",
        _ => Markup.Escape(status),
    };

    public static string Time(DateTimeOffset at) => at.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture);
}
