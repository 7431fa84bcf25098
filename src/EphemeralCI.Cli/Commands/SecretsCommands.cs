using System.ComponentModel;
using System.Text.Json;
using EphemeralCI.Cli.Api;
using EphemeralCI.Cli.Hosting;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EphemeralCI.Cli.Commands;

public class SecretNameSettings : SecretsServerSettings
{
    [CommandArgument(0, "<NAME>")]
    [Description("The secret's name (letters, digits and '_'; it becomes the job's environment variable)")]
    public string Name { get; set; } = "";
}

/// <summary>A secret's policy: which jobs may receive it. Always sent whole (the broker replaces it as a whole).</summary>
public class SecretPolicySettings : SecretNameSettings
{
    [CommandOption("--repo <GLOB>")]
    [Description("Repositories whose jobs may receive it, e.g. acme/* ('**' admits all); repeat for several")]
    public string[] Repositories { get; set; } = [];

    [CommandOption("--ref <GLOB>")]
    [Description("Git refs whose jobs may receive it, e.g. refs/heads/main or refs/tags/v*; repeat for several")]
    public string[] Refs { get; set; } = [];

    [CommandOption("--environment <ENV>")]
    [Description("Only jobs declaring this environment may receive it (left out: any environment)")]
    public string? Environment { get; set; }
}

public sealed class SecretsAuditSettings : SecretsServerSettings
{
    [CommandOption("--secret <NAME>")]
    [Description("Only lines about this secret")]
    public string? Secret { get; set; }

    [CommandOption("--job <ID>")]
    [Description("Only lines about this job")]
    public Guid? JobId { get; set; }

    [CommandOption("--action <ACTION>")]
    [Description("Only this action, e.g. secret.created, policy.changed, exchange.granted, exchange.denied")]
    public string? Action { get; set; }

    [CommandOption("--after <ID>")]
    [Description("Lines after this id (the last one seen), for paging")]
    public long? After { get; set; }

    [CommandOption("--limit <N>")]
    [Description("At most this many lines (1 to 1000, default 100), oldest first")]
    public int? Limit { get; set; }
}

/// <summary>
/// `eci secrets set NAME --repo GLOB --ref GLOB`: the value comes from stdin and nowhere else, so
/// it never lands in a shell history, a process list or a CI log of the command line.
/// </summary>
public sealed class SecretsSetCommand(EciContext context) : SecretPutCommand(context)
{
    protected override async Task<int> RunAsync(SecretPolicySettings settings, CancellationToken ct)
    {
        SecretInput.CheckPolicyOptions(settings, required: false);
        var value = SecretInput.ReadValue(Context);
        using var api = ConnectSecrets(settings);
        PutSecretRequest request;
        if (settings.Repositories.Length == 0)
        {
            // A new value under the current policy: read it so the PUT (which always carries a whole policy) keeps it.
            var current = await ExistingAsync(api, settings.Name,
                new CliException($"There is no secret named '{settings.Name}' yet; a new secret needs its policy: --repo GLOB and --ref GLOB.", ExitCodes.Usage), ct);
            request = new PutSecretRequest(value, current.Repositories, current.Refs, current.Environment);
        }
        else
        {
            request = new PutSecretRequest(value, settings.Repositories, settings.Refs, settings.Environment);
        }
        return await PutAsync(api, settings, request, s => $"is at version {s.CurrentVersion}; {SecretInput.Describe(s)}", ct);
    }
}

/// <summary>
/// `eci secrets policy NAME --repo ... --ref ...`: the broker's PUT without a value changes only the
/// policy and keeps the current version, so no value is asked for.
/// </summary>
public sealed class SecretsPolicyCommand(EciContext context) : SecretPutCommand(context)
{
    protected override async Task<int> RunAsync(SecretPolicySettings settings, CancellationToken ct)
    {
        SecretInput.CheckPolicyOptions(settings, required: true);
        using var api = ConnectSecrets(settings);
        // Without this check the broker would answer "value: is required when creating a secret", which reads oddly for `policy`.
        await ExistingAsync(api, settings.Name, new CliException(
            $"There is no secret named '{settings.Name}'; create it with `eci secrets set {settings.Name} --repo GLOB --ref GLOB` (value on stdin).", ExitCodes.NotFound), ct);
        return await PutAsync(api, settings, new PutSecretRequest(null, settings.Repositories, settings.Refs, settings.Environment),
            s => $"(version {s.CurrentVersion}, unchanged): {SecretInput.Describe(s)}", ct);
    }
}

/// <summary>What `set` and `policy` share: both end in the broker's PUT.</summary>
public abstract class SecretPutCommand(EciContext context) : EciCommand<SecretPolicySettings>(context)
{
    protected static async Task<SecretMetadata> ExistingAsync(EciApiClient api, string name, CliException whenMissing, CancellationToken ct)
    {
        try
        {
            return (await api.GetSecretAsync(name, ct)).Value;
        }
        catch (EciApiException ex) when (ex.Problem.Status == 404 && ex.Problem.Title is not null)
        {
            throw whenMissing;
        }
    }

    protected async Task<int> PutAsync(EciApiClient api, SecretPolicySettings settings, PutSecretRequest request, Func<SecretMetadata, string> outcome, CancellationToken ct)
    {
        var result = await api.PutSecretAsync(settings.Name, request, ct);
        if (settings.Json) WriteJson(result.Json);
        else Context.Out.MarkupLine($"Secret [bold]{Markup.Escape(result.Value.Name)}[/] {outcome(result.Value)}.");
        return ExitCodes.Success;
    }
}

public sealed class SecretsListCommand(EciContext context) : EciCommand<SecretsServerSettings>(context)
{
    protected override async Task<int> RunAsync(SecretsServerSettings settings, CancellationToken ct)
    {
        using var api = ConnectSecrets(settings);
        var result = await api.ListSecretsAsync(ct);
        if (settings.Json)
        {
            WriteJson(result.Json);
            return ExitCodes.Success;
        }
        if (result.Value.Count == 0)
        {
            Context.Out.MarkupLine("[grey]No secrets.[/]");
            return ExitCodes.Success;
        }
        var table = new Table().Border(TableBorder.Simple).AddColumns("NAME", "VERSION", "REPOSITORIES", "REFS", "ENVIRONMENT", "UPDATED", "BY");
        foreach (var s in result.Value)
        {
            table.AddRow(Markup.Escape(s.Name), s.CurrentVersion.ToString(System.Globalization.CultureInfo.InvariantCulture),
                Markup.Escape(string.Join(" ", s.Repositories)), Markup.Escape(string.Join(" ", s.Refs)),
                Markup.Escape(s.Environment ?? "(any)"), Render.Time(s.UpdatedAt), Markup.Escape(s.UpdatedBy));
        }
        Context.Out.Write(table);
        return ExitCodes.Success;
    }
}

public sealed class SecretsShowCommand(EciContext context) : EciCommand<SecretNameSettings>(context)
{
    protected override async Task<int> RunAsync(SecretNameSettings settings, CancellationToken ct)
    {
        using var api = ConnectSecrets(settings);
        var result = await api.GetSecretAsync(settings.Name, ct);
        if (settings.Json)
        {
            WriteJson(result.Json);
            return ExitCodes.Success;
        }
        var s = result.Value;
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("[bold]name[/]", Markup.Escape(s.Name));
        grid.AddRow("[bold]version[/]", s.CurrentVersion.ToString(System.Globalization.CultureInfo.InvariantCulture));
        grid.AddRow("[bold]repositories[/]", Markup.Escape(string.Join(" ", s.Repositories)));
        grid.AddRow("[bold]refs[/]", Markup.Escape(string.Join(" ", s.Refs)));
        grid.AddRow("[bold]environment[/]", Markup.Escape(s.Environment ?? "(any)"));
        grid.AddRow("[bold]created[/]", Render.Time(s.CreatedAt));
        grid.AddRow("[bold]updated[/]", $"{Render.Time(s.UpdatedAt)} by {Markup.Escape(s.UpdatedBy)}");
        Context.Out.Write(grid);
        if (s.Versions is { Count: > 0 } versions)
        {
            var table = new Table().Border(TableBorder.Simple).AddColumns("VERSION", "CREATED", "BY", "SEALED WITH KEY");
            foreach (var v in versions)
            {
                table.AddRow(v.Version.ToString(System.Globalization.CultureInfo.InvariantCulture), Render.Time(v.CreatedAt), Markup.Escape(v.CreatedBy), Markup.Escape(v.KeyId));
            }
            Context.Out.Write(table);
        }
        return ExitCodes.Success;
    }
}

public sealed class SecretsDeleteCommand(EciContext context) : EciCommand<SecretNameSettings>(context)
{
    protected override async Task<int> RunAsync(SecretNameSettings settings, CancellationToken ct)
    {
        using var api = ConnectSecrets(settings);
        await api.DeleteSecretAsync(settings.Name, ct);
        if (settings.Json) WriteJson(JsonSerializer.Serialize(new { name = settings.Name, deleted = true }, EciApiClient.Json));
        else Context.Out.MarkupLine($"Secret [bold]{Markup.Escape(settings.Name)}[/] and every version of it are deleted.");
        return ExitCodes.Success;
    }
}

public sealed class SecretsAuditCommand(EciContext context) : EciCommand<SecretsAuditSettings>(context)
{
    protected override async Task<int> RunAsync(SecretsAuditSettings settings, CancellationToken ct)
    {
        using var api = ConnectSecrets(settings);
        var result = await api.QueryAuditAsync(settings.Secret, settings.JobId, settings.Action, settings.After, settings.Limit, ct);
        if (settings.Json)
        {
            WriteJson(result.Json);
            return ExitCodes.Success;
        }
        if (result.Value.Count == 0)
        {
            Context.Out.MarkupLine("[grey]No audit lines.[/]");
            return ExitCodes.Success;
        }
        var table = new Table().Border(TableBorder.Simple).AddColumns("ID", "AT", "ACTOR", "ACTION", "SECRET", "JOB", "REPOSITORY", "REF", "DETAIL");
        foreach (var e in result.Value)
        {
            table.AddRow(e.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), Render.Time(e.At), Markup.Escape(e.Actor), Markup.Escape(e.Action),
                Markup.Escape(e.Secret ?? ""), e.JobId?.ToString() ?? "", Markup.Escape(e.Repository ?? ""), Markup.Escape(e.Ref ?? ""), Markup.Escape(e.Detail ?? ""));
        }
        Context.Out.Write(table);
        Context.Out.MarkupLine($"[grey]next page: eci secrets audit --after {result.Value[^1].Id}[/]");
        return ExitCodes.Success;
    }
}

/// <summary>The pure parts of the secrets commands: reading the value, checking the policy options.</summary>
internal static class SecretInput
{
    /// <summary>
    /// The value is all of stdin, less one trailing newline (what `echo` or a here-string adds; a second
    /// one is kept, as it may belong to the value). A terminal on stdin is refused: nothing was piped,
    /// and a value typed there would be echoed on the screen.
    /// </summary>
    public static string ReadValue(EciContext context)
    {
        if (context.StdInIsTerminal)
        {
            throw new CliException("The secret's value is read from stdin only, and stdin is a terminal: pipe the value in.", ExitCodes.Usage,
            [
                "printf '%s' \"$VALUE\" | eci secrets set NAME --repo GLOB --ref GLOB",
                "eci secrets set NAME --repo GLOB --ref GLOB < value.txt",
                "It is never taken as an argument: arguments end up in shell history and process lists.",
            ]);
        }
        return StripOneNewline(context.StdIn.ReadToEnd()) is { Length: > 0 } value
            ? value
            : throw new CliException("The value on stdin is empty; pipe the secret's value in, e.g. printf '%s' \"$VALUE\" | eci secrets set NAME ...", ExitCodes.Usage);
    }

    private static readonly string[] OptionsWithValue = ["--repo", "--ref", "--environment", "--secrets-server"];
    private static readonly string[] Flags = ["--json", "-h", "--help"];

    /// <summary>
    /// Checked before the argument parser sees the command line: a second argument (or an unknown
    /// option such as --value) to `secrets set|policy` can only be an attempt to pass the value there.
    /// The parser would echo it back in its error, i.e. print the secret into a CI log; this message names no argument's value.
    /// </summary>
    public static string? RefuseValueOnCommandLine(string[] args)
    {
        if (args.Length < 2 || args[0] != "secrets" || args[1] is not ("set" or "policy")) return null;
        var positionals = 0;
        for (var i = 2; i < args.Length; i++)
        {
            var a = args[i];
            if (OptionsWithValue.Contains(a)) { i++; continue; }
            if (Flags.Contains(a) || OptionsWithValue.Any(o => a.StartsWith(o + "=", StringComparison.Ordinal))) continue;
            if (a.StartsWith("--", StringComparison.Ordinal))
            {
                var name = a.Split('=', 2)[0];
                return $"`eci secrets {args[1]}` has no option {name}. A secret's value is read from stdin only, never from the command line (arguments end up in shell history and process lists).";
            }
            if (a.StartsWith('-') || ++positionals > 1)
            {
                return $"`eci secrets {args[1]}` takes one argument, the secret's NAME. A secret's value is read from stdin only, never from the command line (arguments end up in shell history and process lists).";
            }
        }
        return null;
    }

    public static string StripOneNewline(string text) =>
        text.EndsWith("\r\n", StringComparison.Ordinal) ? text[..^2]
        : text.EndsWith('\n') ? text[..^1]
        : text;

    /// <summary>The policy is --repo and --ref together (plus --environment); `set` may leave all out to keep the current one.</summary>
    public static void CheckPolicyOptions(SecretPolicySettings settings, bool required)
    {
        var hasRepos = settings.Repositories.Length > 0;
        var hasRefs = settings.Refs.Length > 0;
        if (hasRepos && hasRefs) return;
        if (!required && !hasRepos && !hasRefs && settings.Environment is null) return;
        throw new CliException(
            required
                ? "A policy needs --repo GLOB and --ref GLOB (each may be repeated; '**' admits all), and optionally --environment ENV."
                : "Pass the whole policy (--repo GLOB and --ref GLOB, optionally --environment ENV), or none of it to keep the secret's current policy.",
            ExitCodes.Usage,
            ["The broker replaces a policy as a whole: a left-out --environment means any environment."]);
    }

    public static string Describe(SecretMetadata s) =>
        $"jobs of {Markup.Escape(string.Join(", ", s.Repositories))} on {Markup.Escape(string.Join(", ", s.Refs))}"
        + (s.Environment is { } env ? $" in environment {Markup.Escape(env)}" : " in any environment")
        + " may receive it";
}
