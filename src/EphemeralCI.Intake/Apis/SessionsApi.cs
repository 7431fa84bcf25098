using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Security.Claims;
using System.Text.Json;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.Intake.Auth;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Logs;
using EphemeralCI.Intake.Model;
using EphemeralCI.Intake.Services;
using EphemeralCI.Intake.Validation;
using EphemeralCI.RunnerTemplates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Intake.Apis;

/// <summary>
/// Held runners. A session is a job whose steps arrive one at a time: it is submitted, provisioned, checked out,
/// given its secrets and torn down exactly like a job, and each command becomes its next step.
/// </summary>
public static class SessionsApi
{
    public static RouteGroupBuilder MapSessionsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1/sessions").WithTags("Sessions")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden);

        api.MapPost("/", OpenSession)
            .WithName("OpenSession")
            .WithSummary("Open a session: a fresh runner held for a sequence of commands")
            .WithDescription("The body is a job spec without steps (repository, ref, commitSha, runnerTemplate, timeoutSeconds, env, secrets, " +
                             "caches, checkout) plus session.idleTimeoutSeconds (default 600). The same validation, identity and authorization " +
                             "as POST /api/v1/jobs. The runner ends when the session is deleted, its timeout passes, or no command arrives " +
                             "for the idle timeout.")
            .Accepts<JobSpec>("application/json")
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .RequireScope(ApiKeyScopes.Submit);

        api.MapGet("/{id:guid}", GetSession)
            .WithName("GetSession")
            .WithSummary("Get a session")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .RequireScope(ApiKeyScopes.Read);

        api.MapPost("/{id:guid}/commands", RunCommand)
            .WithName("RunSessionCommand")
            .WithSummary("Run one command (a bash script) in the session's runner")
            .WithDescription("Body: {run, name?, env?} (a step). Answers with server-sent events: 'log' events carrying the session's log from " +
                             "where it stood when the command was accepted (the agent's '==> command N' line, then the command's output), then " +
                             "'exit' {index, exitCode} — or 'end' {status, exitCode, reason} if the session ended first. One command at a time: " +
                             "409 while another runs. Only a credential that could itself open this session may send commands (else 404).")
            .Accepts<StepSpec>("application/json")
            .Produces<string>(StatusCodes.Status200OK, "text/event-stream")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .RequireScope(ApiKeyScopes.Submit);

        api.MapGet("/{id:guid}/terminal", TerminalApi.AttachClient)
            .WithName("AttachSessionTerminal")
            .WithSummary("The terminal of an interactive session (a WebSocket)")
            .WithDescription("WebSocket upgrade; ?cols=&rows= the window size (default 80x24). Binary messages are keystrokes (to the runner) and " +
                             "terminal output (from it); text messages are JSON: {type:'resize',cols,rows} from the client, {type:'exit',code} when the " +
                             "shell exits, {type:'end',status,code,reason} when the session ended otherwise. Only a credential that could itself open " +
                             "this session may attach (else 404); 409 when the session has ended or is not interactive.")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .RequireScope(ApiKeyScopes.Submit);

        api.MapDelete("/{id:guid}", DeleteSession)
            .WithName("DeleteSession")
            .WithSummary("End a session: its runner is destroyed at once (a running command is killed)")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .RequireScope(ApiKeyScopes.Submit);

        app.MapPost("/api/v1/jobs/{id:guid}/shell", OpenShellForJob).WithTags("Sessions")
            .WithName("OpenShellForJob")
            .WithSummary("Open an interactive session with a job's runner: its repository, ref, commit, template, env, secrets, caches and checkout")
            .WithDescription("For debugging a failed job on a fresh runner like its own (never the same runner). Authorized as a new submission of " +
                             "that spec by the caller. Body (optional): {idleTimeoutSeconds, timeoutSeconds}. 201 with the session; attach to its terminal.")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .RequireScope(ApiKeyScopes.Submit);

        return api;
    }

    /// <summary>A shell on a fresh runner made from a job's spec: every check of a new submission applies to the caller, as if it had sent that spec.</summary>
    public static async Task<Results<Created<SessionSummary>, ValidationProblem, ProblemHttpResult>> OpenShellForJob(
        Guid id, HttpRequest request, [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey, ClaimsPrincipal user, IntakeDbContext db,
        RunnerTemplateCatalog templates, JobSubmissionService submissions, CancellationToken ct)
    {
        var job = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, ct);
        if (job is null || !user.JobAccess().MaySee(job.Repository)) return Problems.JobNotFound(id);
        var options = new ShellOptions(null, null);
        if (request.ContentLength is > 0)
        {
            var body = await RequestBody.ReadJsonAsync<ShellOptions>(request, 4096, ct);
            if (body.Problem is { } problem) return problem;
            options = body.Value!;
        }
        var original = job.ParsedSpec();
        var spec = original with
        {
            Name = $"shell for job {id}",
            Steps = null,
            Retry = null,
            // Another job's masked values (a GitHub runner's one-time JIT config) are never handed to a debugging shell.
            Env = original.Env?.Where(e => original.MaskedEnv?.Contains(e.Key) != true).ToDictionary(e => e.Key, e => e.Value),
            MaskedEnv = null,
            TimeoutSeconds = options.TimeoutSeconds ?? original.TimeoutSeconds,
            Session = new SessionSpec { Interactive = true, IdleTimeoutSeconds = options.IdleTimeoutSeconds },
        };
        var submitted = await JobsApi.SubmitSpecAsync(spec, idempotencyKey, user, templates, submissions, ct);
        if (submitted.Invalid is { } invalid) return invalid;
        if (submitted.Refused is { } refused) return refused;
        var session = SessionSummary.From(submitted.Job!);
        return TypedResults.Created(session.Links.Self, session);
    }

    private sealed record ShellOptions(int? IdleTimeoutSeconds, int? TimeoutSeconds);

    public static async Task<Results<Created<SessionSummary>, ValidationProblem, ProblemHttpResult>> OpenSession(
        HttpRequest request, [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey, ClaimsPrincipal user,
        RunnerTemplateCatalog templates, JobSubmissionService submissions, CancellationToken ct)
    {
        var body = await RequestBody.ReadJsonAsync<JobSpec>(request, JobsApi.MaxBodyBytes, ct);
        if (body.Problem is { } problem) return problem;
        var spec = body.Value! with { Session = body.Value!.Session ?? new SessionSpec() };
        var submitted = await JobsApi.SubmitSpecAsync(spec, idempotencyKey, user, templates, submissions, ct);
        if (submitted.Invalid is { } invalid) return invalid;
        if (submitted.Refused is { } refused) return refused;
        var session = SessionSummary.From(submitted.Job!);
        return TypedResults.Created(session.Links.Self, session);
    }

    public static async Task<Results<Ok<SessionSummary>, ProblemHttpResult>> GetSession(Guid id, ClaimsPrincipal user, IntakeDbContext db, CancellationToken ct) =>
        await FindAsync(id, user, db, ct) is { } job ? TypedResults.Ok(SessionSummary.From(job)) : NotFound(id);

    public static async Task<Results<Ok<SessionSummary>, ProblemHttpResult>> DeleteSession(
        Guid id, ClaimsPrincipal user, IntakeDbContext db, JobUpdater jobs, CancellationToken ct)
    {
        if (await FindAsync(id, user, db, ct) is not { } session) return NotFound(id);
        // Deleting an ended session is not an error: its runner is already gone, which is what was asked.
        if (session.Status.IsTerminal()) return TypedResults.Ok(SessionSummary.From(session));
        var cancelled = await JobsApi.CancelJob(id, user, db, jobs, ct);
        if (cancelled.Result is Ok<JobSummary>) return TypedResults.Ok(SessionSummary.From((await FindAsync(id, user, db, ct))!));
        return await FindAsync(id, user, db, ct) is { } ended ? TypedResults.Ok(SessionSummary.From(ended)) : NotFound(id);
    }

    public static async Task<Results<ServerSentEventsResult<string>, ValidationProblem, ProblemHttpResult>> RunCommand(
        Guid id, HttpRequest request, ClaimsPrincipal user, IntakeDbContext db, JobUpdater jobs, JobLogStore logs,
        SessionCommandFollower follower, JobSpecSeal seal, CancellationToken ct)
    {
        if (await FindAsync(id, user, db, ct) is not { } session) return NotFound(id);
        // Commands run with the session's secrets and identity: only a credential that could have opened
        // this very session may send them (a key for other refs of the same repository may not).
        if (user.JobAccess().CheckSubmission(session.ParsedSpec()) is not null) return NotFound(id);

        var body = await RequestBody.ReadJsonAsync<StepSpec>(request, JobsApi.MaxBodyBytes, ct);
        if (body.Problem is { } problem) return problem;
        var errors = JobSpecValidator.ValidateCommand(body.Value!);
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors, title: "The command is not valid");

        var count = session.ParsedSpec().Steps?.Count ?? 0;
        if (session.Status.IsTerminal()) return Ended(session);
        if (session.ParsedSpec().Session!.Interactive == true)
            return Problems.Conflict("An interactive session", "This session's runner runs a shell: type into its terminal (eci shell), not commands.");
        if (count > 0 && !await follower.FinishedAsync(id, count - 1, session.Attempt, ct))
        {
            return Problems.Conflict("A command is running", "A session runs one command at a time; send the next when this one's 'exit' event has come.");
        }
        // Where the log stands now: the previous command's output is all in (the agent flushes it before reporting it finished).
        var from = await logs.EndAsync(id, ct);
        var (outcome, job) = await jobs.UpdateAsync(id, null, change => change.Job.AppendSessionCommand(seal.Seal(body.Value!, session.ParsedSpec().MaskedEnv), count), ct);
        if (outcome != JobUpdateOutcome.Applied)
        {
            if (job is null) return NotFound(id);
            if (job.Status.IsTerminal()) return Ended(job);
            if (count >= SessionSpec.MaxCommands)
                return Problems.Conflict("Too many commands", $"A session runs at most {SessionSpec.MaxCommands} commands; open a new one.");
            return Problems.Conflict("A command is running", "Another command was accepted at the same moment; a session runs one at a time.");
        }
        return TypedResults.ServerSentEvents(follower.FollowAsync(id, count, job!.Attempt, from, ct));
    }

    private static async Task<Job?> FindAsync(Guid id, ClaimsPrincipal user, IntakeDbContext db, CancellationToken ct)
    {
        var job = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, ct);
        // Another repository's session, and a job that is not a session, answer like a session that does not exist.
        return job is not null && user.JobAccess().MaySee(job.Repository) && job.ParsedSpec().Session is not null ? job : null;
    }

    private static ProblemHttpResult NotFound(Guid id) => Problems.NotFound("Session not found", $"There is no session {id}.");

    private static ProblemHttpResult Ended(Job job) =>
        Problems.Conflict("The session has ended", $"The session is {JobStatusNames.ToName(job.Status)} ({job.StatusReason}); open a new one.");
}

/// <summary>
/// Streams one command: the session's log from where it stood when the command was accepted, until the agent reports
/// the command finished (<c>exit</c>) or the session ends (<c>end</c>). Subscribe first, then read, then wait, like
/// <see cref="JobLogFollower"/>, so nothing committed between a read and the wait is missed.
/// </summary>
public sealed class SessionCommandFollower(IntakeDbContext db, JobLogStore store, IJobLiveNotifier notifier)
{
    public const string ExitEvent = "exit";

    /// <summary>True when the agent has reported command <paramref name="index"/> finished.</summary>
    public async Task<bool> FinishedAsync(Guid sessionId, int index, int attempt, CancellationToken ct) =>
        await ExitCodeAsync(sessionId, index, attempt, ct) is not null;

    private async Task<int?> ExitCodeAsync(Guid sessionId, int index, int attempt, CancellationToken ct)
    {
        var source = RunnerApi.StepEventId(new RunnerStepEvent(JobEventTypes.StepFinished, index, "", null, default), attempt);
        var data = await db.JobEvents.AsNoTracking().Where(e => e.JobId == sessionId && e.SourceMessageId == source).Select(e => e.Data).FirstOrDefaultAsync(ct);
        if (data is null) return null;
        using var doc = JsonDocument.Parse(data);
        return doc.RootElement.TryGetProperty("exitCode", out var code) && code.TryGetInt32(out var value) ? value : -1;
    }

    public async IAsyncEnumerable<SseItem<string>> FollowAsync(Guid sessionId, int index, int attempt, long fromOffset, [EnumeratorCancellation] CancellationToken ct)
    {
        await using var wakeup = await notifier.SubscribeAsync(sessionId);
        var next = fromOffset;
        while (true)
        {
            // Both before the chunks: the agent's output of the command is all stored before it reports the command finished.
            var state = await db.Jobs.AsNoTracking().Where(j => j.Id == sessionId).Select(j => new { j.Status, j.ExitCode, j.StatusReason }).FirstOrDefaultAsync(ct);
            if (state is null) yield break;
            var exitCode = await ExitCodeAsync(sessionId, index, attempt, ct);

            List<JobLogChunk> chunks;
            do
            {
                chunks = await store.ReadFromAsync(sessionId, next, 200, ct);
                foreach (var chunk in chunks)
                {
                    next = chunk.End;
                    if (chunk.Text.Length > 0) yield return new SseItem<string>(chunk.Text, JobLogFollower.LogEvent);
                }
            } while (chunks.Count == 200);

            if (exitCode is { } code)
            {
                yield return new SseItem<string>(JsonSerializer.Serialize(new CommandExit(index, code), JsonSerializerOptions.Web), ExitEvent);
                yield break;
            }
            if (state.Status.IsTerminal())
            {
                var end = JsonSerializer.Serialize(new SessionEnd(JobStatusNames.ToName(state.Status), state.ExitCode, state.StatusReason), JsonSerializerOptions.Web);
                yield return new SseItem<string>(end, JobLogFollower.EndEvent);
                yield break;
            }
            try
            {
                await wakeup.WaitAsync(JobLogFollower.PollInterval, ct);
            }
            catch (OperationCanceledException)
            {
                yield break;
            }
        }
    }

    private sealed record CommandExit(int Index, int ExitCode);
    private sealed record SessionEnd(string Status, int? ExitCode, string? Reason);
}
