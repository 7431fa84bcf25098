using System.ComponentModel;
using System.Text.Json;
using EphemeralCI.Cli.Api;
using EphemeralCI.Cli.Configuration;
using EphemeralCI.Cli.Hosting;
using Spectre.Console.Cli;

namespace EphemeralCI.Cli.Commands;

// GitLab's custom executor (docs/gitlab.md): gitlab-runner calls config, prepare, run (once per stage) and cleanup
// as separate processes, with the job's variables as CUSTOM_ENV_*. One job is one session: prepare opens it,
// each stage's script runs in it as one command, cleanup deletes it. The session id lives in a state file
// keyed by the job's id, so the later processes find it.

public class GitLabSettings : ServerSettings
{
    [CommandOption("--state-dir <DIR>")]
    [Description("Where prepare records each job's session for run and cleanup (default: ECI_GITLAB_STATE_DIR, else $TMPDIR/eci-gitlab)")]
    public string? StateDirectory { get; set; }
}

public sealed class GitLabRunSettings : GitLabSettings
{
    [CommandArgument(0, "<SCRIPT>")]
    [Description("The script file gitlab-runner generated for this stage")]
    public string Script { get; set; } = "";

    [CommandArgument(1, "<STAGE>")]
    [Description("The stage's name (prepare_script, get_sources, build_script, …; unknown names are run alike)")]
    public string Stage { get; set; } = "";
}

/// <summary>What every stage needs: the job's variables, its state file, and a client with the job's credential.</summary>
public abstract class GitLabCommand<TSettings>(EciContext context) : EciCommand<TSettings>(context) where TSettings : GitLabSettings
{
    /// <summary>The CUSTOM_ENV_ variable holding the job's GitLab ID token (an <c>id_tokens:</c> entry), unless ECI_GITLAB_ID_TOKEN_VARIABLE names another.</summary>
    public const string DefaultIdTokenVariable = "ECI_ID_TOKEN";
    /// <summary>A stage's script can run for as long as the GitLab job may: the command stream has no deadline of its own.</summary>
    private static readonly TimeSpan StageRequestTimeout = TimeSpan.FromMinutes(10);

    protected string? Job(string name) => Context.Environment("CUSTOM_ENV_" + name) is { Length: > 0 } value ? value : null;

    protected string StateFile(TSettings settings)
    {
        var jobId = Job("CI_JOB_ID") ?? throw new CliException("CUSTOM_ENV_CI_JOB_ID is not set: run this as gitlab-runner's custom executor.", ExitCodes.Usage);
        if (!long.TryParse(jobId, out _)) throw new CliException($"CUSTOM_ENV_CI_JOB_ID '{jobId}' is not a job id.", ExitCodes.Usage);
        var dir = settings.StateDirectory ?? Context.Environment("ECI_GITLAB_STATE_DIR") ?? Path.Combine(Path.GetTempPath(), "eci-gitlab");
        Directory.CreateDirectory(dir);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return Path.Combine(dir, $"{jobId}.json");
    }

    protected Guid? ReadSession(TSettings settings)
    {
        var path = StateFile(settings);
        if (!File.Exists(path)) return null;
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.GetProperty("sessionId").GetGuid();
    }

    /// <summary>
    /// The job's GitLab ID token when it has one (then no EphemeralCI key need be stored on the runner host: the intake's
    /// gitlab trust policy verifies it and takes repository, ref and commit from its claims), else the configured key.
    /// </summary>
    protected EciApiClient ConnectForJob(TSettings settings)
    {
        var variable = Context.Environment("ECI_GITLAB_ID_TOKEN_VARIABLE") ?? DefaultIdTokenVariable;
        if (Job(variable) is not { } idToken) return new EciApiClient(ServerOf(settings), ApiKeyOf(settings), Context.HttpHandler) { RequestTimeout = StageRequestTimeout };
        return new EciApiClient(ServerOf(settings), idToken, Context.HttpHandler) { RequestTimeout = StageRequestTimeout };
    }

    private Uri ServerOf(TSettings settings)
    {
        var server = new ConfigStore(Context.ConfigPath).Resolve(Context.Environment, settings.Server).Server
            ?? throw new CliException("No server configured.", ExitCodes.Usage, ["Set ECI_SERVER in the runner's environment or pass --server URL in config.toml's *_args."]);
        return ConfigStore.ParseServer(server);
    }

    private string ApiKeyOf(TSettings settings) => new ConfigStore(Context.ConfigPath).Resolve(Context.Environment, settings.Server).ApiKey
        ?? throw new CliException("No credential: the job has no ID token and no API key is configured.", ExitCodes.Auth,
            [$"Give the job `id_tokens: {{{DefaultIdTokenVariable}: {{aud: <intake audience>}}}}`, or set ECI_API_KEY in the runner's environment."]);

    /// <summary>GitLab's exit code for an infrastructure failure (it may retry the job); 1 when run by hand.</summary>
    protected int SystemFailure => int.TryParse(Context.Environment("SYSTEM_FAILURE_EXIT_CODE"), out var code) ? code : ExitCodes.Error;
    /// <summary>GitLab's exit code for a failed script; 1 when run by hand.</summary>
    protected int BuildFailure => int.TryParse(Context.Environment("BUILD_FAILURE_EXIT_CODE"), out var code) ? code : ExitCodes.Error;
}

/// <summary><c>config_exec</c>: where the builds and caches live in the runner, and who drives it.</summary>
public sealed class GitLabConfigCommand(EciContext context) : GitLabCommand<GitLabSettings>(context)
{
    public const string BuildsDir = "/workspace/builds";
    public const string CacheDir = "/workspace/cache";

    protected override Task<int> RunAsync(GitLabSettings settings, CancellationToken ct)
    {
        var version = EciApp.Version;
        Context.StdOut.WriteLine(JsonSerializer.Serialize(new
        {
            builds_dir = BuildsDir,
            cache_dir = CacheDir,
            // Each job has a runner of its own: nothing is shared with another job.
            builds_dir_is_shared = false,
            driver = new { name = "EphemeralCI", version },
            job_env = new Dictionary<string, string> { ["ECI_RUNNER"] = "1" },
        }));
        return Task.FromResult(ExitCodes.Success);
    }
}

/// <summary><c>prepare_exec</c>: opens the job's session (idempotent per GitLab job) and records it.</summary>
public sealed class GitLabPrepareCommand(EciContext context) : GitLabCommand<GitLabSettings>(context)
{
    protected override async Task<int> RunAsync(GitLabSettings settings, CancellationToken ct)
    {
        var state = StateFile(settings);
        var template = Job("ECI_RUNNER_TEMPLATE") ?? TemplateFromTags(Job("CI_RUNNER_TAGS")) ?? "default";
        var tag = Job("CI_COMMIT_TAG");
        var gitRef = tag is not null ? $"refs/tags/{tag}" : Job("CI_COMMIT_REF_NAME") is { } branch ? $"refs/heads/{branch}" : null;
        var session = new
        {
            name = $"gitlab job {Job("CI_JOB_ID")} ({Job("CI_JOB_NAME")})",
            repository = Job("CI_PROJECT_PATH"),
            @ref = gitRef,
            commitSha = Job("CI_COMMIT_SHA"),
            runnerTemplate = template,
            timeoutSeconds = int.TryParse(Job("CI_JOB_TIMEOUT"), out var timeout) ? timeout : (int?)null,
            // gitlab-runner fetches the sources itself (get_sources), with the job's own credentials.
            checkout = false,
            session = new { idleTimeoutSeconds = 600 },
        };
        try
        {
            using var api = ConnectForJob(settings);
            var opened = await api.OpenSessionAsync(session, $"gitlab-job-{Job("CI_JOB_ID")}", ct);
            await File.WriteAllTextAsync(state, JsonSerializer.Serialize(new { sessionId = opened.Value.Id }), ct);
            Context.StdOut.WriteLine($"EphemeralCI session {opened.Value.Id}: a fresh runner from template '{opened.Value.RunnerTemplate}' for {opened.Value.Repository}@{opened.Value.Ref}");
            return ExitCodes.Success;
        }
        catch (Exception e) when (e is EciApiException or CliException)
        {
            // Refused or unreachable: GitLab's system failure (a refusal names the field on stderr).
            if (e is EciApiException api) { var (message, details, _) = Describe(api); ReportError(message, details); }
            else ReportError(e.Message, ((CliException)e).Details);
            return SystemFailure;
        }
    }

    /// <summary>A runner tag <c>eci:TEMPLATE</c> (CI_RUNNER_TAGS is a JSON list or a comma-separated one).</summary>
    public static string? TemplateFromTags(string? tags)
    {
        if (tags is null) return null;
        IEnumerable<string> list;
        try { list = tags.TrimStart().StartsWith('[') ? JsonSerializer.Deserialize<string[]>(tags) ?? [] : tags.Split(','); }
        catch (JsonException) { list = tags.Split(','); }
        return list.Select(t => t.Trim()).FirstOrDefault(t => t.StartsWith("eci:", StringComparison.Ordinal) && t.Length > 4)?[4..];
    }
}

/// <summary><c>run_exec</c>: one stage's script, run as the session's next command; its output goes to the job's log.</summary>
public sealed class GitLabRunCommand(EciContext context) : GitLabCommand<GitLabRunSettings>(context)
{
    protected override async Task<int> RunAsync(GitLabRunSettings settings, CancellationToken ct)
    {
        try
        {
            if (ReadSession(settings) is not { } session) throw new CliException("No session for this job: prepare did not run or failed.", ExitCodes.Error);
            var script = await File.ReadAllTextAsync(settings.Script, ct);
            using var api = ConnectForJob(settings);
            var outcome = await api.RunSessionCommandAsync(session, script, async text =>
            {
                await Context.StdOut.WriteAsync(text);
                await Context.StdOut.FlushAsync(ct);
            }, ct);
            if (outcome.ExitCode is { } code) return code == 0 ? ExitCodes.Success : BuildFailure;
            ReportError($"The session ended during stage {settings.Stage}: {outcome.SessionEnd?.Status} ({outcome.SessionEnd?.Reason})", []);
            return SystemFailure;
        }
        catch (Exception e) when (e is EciApiException or CliException or IOException or HttpRequestException)
        {
            if (e is EciApiException api) { var (message, details, _) = Describe(api); ReportError(message, details); }
            else ReportError(e.Message, e is CliException cli ? cli.Details : []);
            return SystemFailure;
        }
    }
}

/// <summary><c>cleanup_exec</c>: deletes the session (its runner is destroyed) whatever happened before, and forgets it.</summary>
public sealed class GitLabCleanupCommand(EciContext context) : GitLabCommand<GitLabSettings>(context)
{
    protected override async Task<int> RunAsync(GitLabSettings settings, CancellationToken ct)
    {
        var state = StateFile(settings);
        if (ReadSession(settings) is not { } session) return ExitCodes.Success;
        try
        {
            using var api = ConnectForJob(settings);
            var ended = await api.DeleteSessionAsync(session, ct);
            Context.StdOut.WriteLine($"EphemeralCI session {session} ended ({ended.Value.Status}); its runner is destroyed");
        }
        catch (EciApiException e) when (e.Problem.Status == 404)
        {
            // Gone already (or never visible to this credential): nothing left to delete.
        }
        catch (Exception e) when (e is EciApiException or CliException)
        {
            // The session's idle timeout still ends it; keep the state file so a retried cleanup can try again.
            ReportError($"Could not delete session {session}: {e.Message}; its idle timeout will end it.", []);
            return SystemFailure;
        }
        File.Delete(state);
        return ExitCodes.Success;
    }
}
