using System.ComponentModel;
using EphemeralCI.Cli.Api;
using EphemeralCI.Cli.Configuration;
using EphemeralCI.Cli.Hosting;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EphemeralCI.Cli.Commands;

public class OutputSettings : CommandSettings
{
    [CommandOption("--json")]
    [Description("Print the server's JSON instead of text, for scripts")]
    public bool Json { get; set; }
}

/// <summary>Options of every command that talks to the server.</summary>
public class ServerSettings : OutputSettings
{
    [CommandOption("--server <URL>")]
    [Description("The intake's URL for this command (overrides ECI_SERVER and the config file)")]
    public string? Server { get; set; }
}

/// <summary>Options of the secrets commands.</summary>
public class SecretsServerSettings : OutputSettings
{
    [CommandOption("--secrets-server <URL>")]
    [Description("The secrets broker's URL for this command (overrides ECI_SECRETS_SERVER and the config file; default: the server's URL)")]
    public string? SecretsServer { get; set; }
}

/// <summary>Options of the cache commands.</summary>
public class CacheServerSettings : OutputSettings
{
    [CommandOption("--cache-server <URL>")]
    [Description("The cache's URL for this command (overrides ECI_CACHE_SERVER and the config file; default: the server's URL)")]
    public string? CacheServer { get; set; }
}

/// <summary>
/// The one place errors become messages: a person sees what went wrong and what to do, never a
/// stack trace, and the exit code says which kind of failure it was (see <see cref="ExitCodes"/>).
/// </summary>
public abstract class EciCommand<TSettings>(EciContext context) : AsyncCommand<TSettings> where TSettings : OutputSettings
{
    protected EciContext Context { get; } = context;

    protected abstract Task<int> RunAsync(TSettings settings, CancellationToken ct);

    public sealed override async Task<int> ExecuteAsync(CommandContext commandContext, TSettings settings, CancellationToken cancellationToken)
    {
        try
        {
            return await RunAsync(settings, cancellationToken);
        }
        catch (CliException ex)
        {
            ReportError(ex.Message, ex.Details);
            return ex.ExitCode;
        }
        catch (EciApiException ex)
        {
            var (message, details, code) = Describe(ex);
            ReportError(message, details);
            return code;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return ExitCodes.Cancelled;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A bug or an environment we did not foresee: still one line, not a stack trace.
            ReportError($"Unexpected error: {ex.Message}", ["Please report this with the command that was run."]);
            return ExitCodes.Error;
        }
    }

    protected void ReportError(string message, IReadOnlyList<string> details)
    {
        Context.Err.MarkupLine($"[red]error:[/] {Markup.Escape(message)}");
        foreach (var line in details) Context.Err.MarkupLine($"  {Markup.Escape(line)}");
    }

    /// <summary>Connects with the configured server and key; says how to configure them when they are missing.</summary>
    protected EciApiClient Connect(TSettings settings)
    {
        var resolved = new ConfigStore(Context.ConfigPath).Resolve(Context.Environment, (settings as ServerSettings)?.Server);
        if (resolved.Server is null)
        {
            throw new CliException("No server configured.", ExitCodes.Usage,
                ["Run `eci config set --server URL`, set ECI_SERVER, or pass --server URL."]);
        }
        if (resolved.ApiKey is null)
        {
            throw new CliException("No API key configured.", ExitCodes.Usage,
                ["Run `eci config set --key -` and paste the key (it is read from stdin), or set ECI_API_KEY."]);
        }
        return new EciApiClient(ConfigStore.ParseServer(resolved.Server), resolved.ApiKey, Context.HttpHandler);
    }

    /// <summary>Connects to the secrets broker's admin API with the secrets admin token.</summary>
    protected EciApiClient ConnectSecrets(SecretsServerSettings settings) =>
        ConnectAdmin(new ConfigStore(Context.ConfigPath).Resolve(Context.Environment, null, secretsServerOption: settings.SecretsServer).Secrets, ApiTarget.SecretsBroker);

    /// <summary>Connects to the cache's admin API with the cache admin token.</summary>
    protected EciApiClient ConnectCache(CacheServerSettings settings) =>
        ConnectAdmin(new ConfigStore(Context.ConfigPath).Resolve(Context.Environment, null, cacheServerOption: settings.CacheServer).Cache, ApiTarget.Cache);

    private EciApiClient ConnectAdmin(ResolvedService service, ApiTarget target)
    {
        if (service.Server is null)
        {
            throw new CliException($"No {target.ServiceName} configured.", ExitCodes.Usage,
                [$"Run `eci config set --server URL` (the all-in-one server serves it too) or `{target.SetServer}`, or set {target.ServerVariable}."]);
        }
        if (service.Token is null)
        {
            throw new CliException($"No {target.CredentialName} configured.", ExitCodes.Usage,
                [$"Run `{target.SetCredential}` and paste the token (it is read from stdin), or set {target.CredentialVariable}."]);
        }
        return new EciApiClient(ConfigStore.ParseServer(service.Server), service.Token, Context.HttpHandler, target);
    }

    protected void WriteJson(string json) => Context.StdOut.WriteLine(json);

    public static (string Message, IReadOnlyList<string> Details, int ExitCode) Describe(EciApiException ex)
    {
        var p = ex.Problem;
        var said = p.Detail ?? p.Title ?? $"HTTP {p.Status}";
        var target = ex.Target;
        return p.Status switch
        {
            // The admin APIs have one static token each: say which one, and how to set it.
            401 when target != ApiTarget.Intake => ($"The {target.CredentialName} was refused; set it with `{target.SetCredential}` (read from stdin) or {target.CredentialVariable}.",
                p.Detail is null ? [] : [$"The {target.ServiceName} said: {p.Detail}"], ExitCodes.Auth),
            401 => ($"The server refused the API key: {p.Detail ?? "it is unknown or revoked"}", [
                "Set a working key with `eci config set --key -` (read from stdin) or ECI_API_KEY; `eci config show` shows which one is used."], ExitCodes.Auth),
            403 => (p.RequiredScope is { } scope
                    ? $"The API key does not have the '{scope}' scope that {ex.Method} {ex.RequestPath} needs."
                    : $"The API key may not do this: {said}",
                p.RequiredScope is not null
                    ? [$"An admin can create a key that may: eci keys create --name NAME --scope {p.RequiredScope} --repo OWNER/NAME"]
                    : p.Errors.Count > 0
                        ? [.. FieldErrors(p), "An admin can create a key bound to what the job needs: eci keys create --repo, --ref, --template, --environment"]
                        : [],
                ExitCodes.Auth),
            404 when p.Title is null => ($"The server has no {ex.Method} {ex.RequestPath}: is {ex.RequestPath} served by {target.Kind}?", [
                $"Check the address with `eci config show` ({target.ServerVariable} overrides the config file)."], ExitCodes.Unreachable),
            404 => (said, [], ExitCodes.NotFound),
            400 or 422 => (p.Title ?? "The server refused the request as invalid.", FieldErrors(p), ExitCodes.Usage),
            413 or 415 => (said, [], ExitCodes.Usage),
            409 => (p.Title is not null && p.Detail is not null ? $"{p.Title}: {p.Detail}" : said, [], ExitCodes.Error),
            >= 500 => ($"The server failed ({p.Status}{(p.Title is null ? "" : " " + p.Title)}); try again, and check the server's log if it keeps failing.", p.Detail is null ? [] : [p.Detail], ExitCodes.Error),
            _ => ($"{ex.Method} {ex.RequestPath} answered {p.Status}: {said}", [], ExitCodes.Error),
        };
    }

    public static IReadOnlyList<string> FieldErrors(Problem p)
    {
        var lines = p.Errors.SelectMany(e => e.Value.Select(m => $"{e.Key}: {m}")).ToList();
        if (lines.Count == 0 && p.Detail is not null) lines.Add(p.Detail);
        return lines;
    }
}
