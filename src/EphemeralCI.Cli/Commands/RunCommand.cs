using System.ComponentModel;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EphemeralCI.Cli.Api;
using EphemeralCI.Cli.Hosting;
using EphemeralCI.Cli.JobFiles;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EphemeralCI.Cli.Commands;

public sealed class RunSettings : ServerSettings
{
    [CommandArgument(0, "<FILE>")]
    [Description("The YAML job file (docs/job-file.md)")]
    public string File { get; set; } = "";

    [CommandOption("--cancel-on-interrupt")]
    [Description("On Ctrl+C or SIGTERM, cancel the job without asking (for CI scripts)")]
    public bool CancelOnInterrupt { get; set; }

    [CommandOption("--detach")]
    [Description("Submit and print the job id without following it")]
    public bool Detach { get; set; }

    [CommandOption("--raw")]
    [Description("Write the log's bytes as they are (escape sequences, the agent's line marker U+001E), for piping")]
    public bool Raw { get; set; }

    [CommandOption("--id-token <SOURCE>")]
    [Description("Authenticate with the CI system's OIDC token instead of an API key: 'github' fetches GitHub Actions' own (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN)")]
    public string? IdToken { get; set; }

    [CommandOption("--id-token-env <NAME>")]
    [Description("Authenticate with the OIDC token in environment variable NAME (e.g. a GitLab id_token) instead of an API key")]
    public string? IdTokenEnv { get; set; }
}

/// <summary>`eci run job.yml`: validate locally, submit, follow live, exit with the job's code.</summary>
public sealed class RunCommand(EciContext context, IGitCheckout git) : EciCommand<RunSettings>(context)
{
    protected override async Task<int> RunAsync(RunSettings settings, CancellationToken ct)
    {
        var loaded = new JobFileLoader(git).Load(settings.File);
        var spec = loaded.File.Spec;
        var body = JsonSerializer.Serialize(spec, EciApiClient.Json);
        using var api = await ConnectForRunAsync(settings, ct);

        var sha = spec.CommitSha is { Length: >= 7 } s ? s[..7] : spec.CommitSha;
        var fromGit = loaded.FromGit.Count > 0 ? $" [grey]({string.Join(", ", loaded.FromGit)} from git)[/]" : "";
        Context.Err.MarkupLine($"Submitting [bold]{Markup.Escape(spec.Name ?? settings.File)}[/]: {Markup.Escape($"{spec.Repository} {spec.Ref} {sha}")}{fromGit}");

        ApiResult<JobAccepted> accepted;
        try
        {
            accepted = await api.SubmitJobAsync(body, IdempotencyKey(loaded.Text), ct);
        }
        catch (EciApiException ex) when (ex.Problem.Status is 400 or 422 && ex.Problem.Errors.Count > 0)
        {
            // Point each field the server refused back at the line of the job file it came from.
            var located = ex.Problem.Errors.SelectMany(e => e.Value.Select(m => loaded.File.Locate(e.Key, m).ToString())).ToList();
            throw new CliException($"The server refused the job: {ex.Problem.Title ?? "invalid job spec"}", ExitCodes.Usage, located);
        }
        var id = accepted.Value.Id;
        if (settings.Detach)
        {
            if (settings.Json) WriteJson(accepted.Json);
            else Context.StdOut.WriteLine(id);
            return ExitCodes.Success;
        }
        // Listen before saying we follow: an interrupt from then on must reach us.
        var interrupted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscription = Context.Interrupts.Subscribe(() => interrupted.TrySetResult());
        Context.Err.MarkupLine($"Job [bold]{id}[/] is {Markup.Escape(accepted.Value.Status)}; following it (Ctrl+C to cancel or detach).");

        var follower = new JobFollower(api, Context)
        {
            LogOut = settings.Json ? Context.StdErr : Context.StdOut,
            Raw = settings.Raw,
            Styled = (settings.Json ? Context.Err : Context.Out).Profile.Capabilities.Ansi,
            StepCount = spec.Steps?.Count,
        };
        using var stopFollowing = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var follow = follower.FollowAsync(id, stopFollowing.Token);

        if (await Task.WhenAny(follow, interrupted.Task) == interrupted.Task)
        {
            var cancel = settings.CancelOnInterrupt
                || (Context.CanPrompt && follower.WithOutputPaused(() => Context.Err.Confirm($"Cancel job {id} on the server?", defaultValue: false)));
            if (!cancel)
            {
                await stopFollowing.CancelAsync();
                try { await follow; } catch (OperationCanceledException) { }
                Context.Err.MarkupLine($"[yellow]Stopped following; job {id} keeps running.[/] Follow it again with: eci jobs logs {id} --follow");
                return ExitCodes.Cancelled;
            }
            await CancelAsync(api, id, ct);
        }

        var end = await follow;
        var final = await api.GetJobAsync(id, ct);
        if (settings.Json) WriteJson(final.Json);
        ShowOutcome(Context, final.Value);
        return JobExitCodes.For(end.Status, end.ExitCode);
    }

    /// <summary>With an API key as configured, or with the CI system's own OIDC token (a trust policy on the server admits it).</summary>
    private async Task<EciApiClient> ConnectForRunAsync(RunSettings settings, CancellationToken ct)
    {
        if (settings.IdToken is null && settings.IdTokenEnv is null) return Connect(settings);
        var resolved = new Configuration.ConfigStore(Context.ConfigPath).Resolve(Context.Environment, settings.Server);
        if (resolved.Server is null)
        {
            throw new CliException("No server configured.", ExitCodes.Usage, ["Run `eci config set --server URL`, set ECI_SERVER, or pass --server URL."]);
        }
        var server = Configuration.ConfigStore.ParseServer(resolved.Server);
        string token;
        if (settings.IdTokenEnv is { } name)
        {
            token = Context.Environment(name) is { Length: > 0 } value
                ? value.Trim()
                : throw new CliException($"--id-token-env {name}: the environment variable {name} is not set.", ExitCodes.Usage);
        }
        else if (settings.IdToken == "github")
        {
            token = await GitHubIdTokenAsync(Context.Environment("ECI_ID_TOKEN_AUDIENCE") ?? server.ToString().TrimEnd('/'), ct);
        }
        else
        {
            throw new CliException($"--id-token {settings.IdToken}: the only source is 'github'; for others use --id-token-env NAME.", ExitCodes.Usage);
        }
        return new EciApiClient(server, token, Context.HttpHandler);
    }

    /// <summary>GitHub Actions' documented way for a job to get its OIDC token (what @actions/core getIDToken does).</summary>
    private async Task<string> GitHubIdTokenAsync(string audience, CancellationToken ct)
    {
        var url = Context.Environment("ACTIONS_ID_TOKEN_REQUEST_URL");
        var bearer = Context.Environment("ACTIONS_ID_TOKEN_REQUEST_TOKEN");
        if (string.IsNullOrEmpty(url) || string.IsNullOrEmpty(bearer))
        {
            throw new CliException("--id-token github: ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set.", ExitCodes.Usage,
                ["Give the workflow job `permissions: id-token: write`."]);
        }
        using var http = Context.HttpHandler is null ? new HttpClient() : new HttpClient(Context.HttpHandler, disposeHandler: false);
        using var request = new HttpRequestMessage(HttpMethod.Get, url + (url.Contains('?') ? "&" : "?") + "audience=" + Uri.EscapeDataString(audience));
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
        try
        {
            using var response = await http.SendAsync(request, ct);
            if (!response.IsSuccessStatusCode)
            {
                throw new CliException($"GitHub refused to issue an OIDC token: HTTP {(int)response.StatusCode}.", ExitCodes.Auth);
            }
            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
            return doc.RootElement.TryGetProperty("value", out var value) && value.GetString() is { Length: > 0 } token
                ? token
                : throw new CliException("GitHub's OIDC token answer has no 'value'.", ExitCodes.Auth);
        }
        catch (Exception ex) when (ex is HttpRequestException or JsonException)
        {
            throw new CliException($"Could not get GitHub's OIDC token: {ex.Message}", ExitCodes.Unreachable);
        }
    }

    private async Task CancelAsync(EciApiClient api, Guid id, CancellationToken ct)
    {
        try
        {
            await api.CancelJobAsync(id, ct);
            Context.Err.MarkupLine($"[yellow]Cancel requested for job {id}.[/]");
        }
        catch (EciApiException ex) when (ex.Problem.Status == 409)
        {
            // It finished meanwhile; following shows how.
        }
    }

    internal static void ShowOutcome(EciContext context, JobSummary job)
    {
        var took = job.StartedAt is { } start && job.FinishedAt is { } end ? $" in {(end - start).TotalSeconds:0.#}s" : "";
        var reason = job.StatusReason is { Length: > 0 } r ? $": {Markup.Escape(r)}" : "";
        var line = job.Status switch
        {
            "succeeded" => $"[green]✓ Job {job.Id} succeeded{took}[/]",
            "failed" => $"[red]✗ Job {job.Id} failed{(job.ExitCode is { } c ? $" with exit code {c}" : "")}{took}[/]{reason}",
            "timed_out" => $"[red]✗ Job {job.Id} timed out after {job.TimeoutSeconds}s[/]{reason}",
            "cancelled" => $"[yellow]■ Job {job.Id} was cancelled[/]{reason}",
            _ => $"Job {job.Id} is {Markup.Escape(job.Status)}{reason}",
        };
        context.Err.MarkupLine(line);
    }

    /// <summary>
    /// The same file in the same invocation gives the same key, so a retried POST after a dropped
    /// connection cannot queue the job twice; the random part makes the next `eci run` a new job.
    /// </summary>
    public static string IdempotencyKey(string fileText)
    {
        var content = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(fileText)))[..32];
        var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        return $"eci-run-{content}-{nonce}";
    }
}
