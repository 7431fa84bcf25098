using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Telemetry;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.Intake.Auth;
using EphemeralCI.Intake.Logs;
using EphemeralCI.Intake.Model;
using EphemeralCI.Intake.Services;
using EphemeralCI.JobTokens;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Intake.Apis;

/// <summary>
/// The API the runner agent calls from inside its sandbox. It authenticates with its job token,
/// and the job it acts on comes only from that token — never from the request.
/// </summary>
public static class RunnerApi
{
    public static RouteGroupBuilder MapRunnerApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("").WithTags("Runner").RequireAuthorization(IntakeAuthorization.RunnerPolicy)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        api.MapGet(RunnerApiRoutes.Job, GetJob)
            .WithName("RunnerGetJob")
            .WithSummary("The runner fetches its job's spec (the job becomes running)")
            .WithDescription($"The first fetch binds the {RunnerApiHeaders.AgentKey} header to the job; a fetch with another key is refused (409).")
            .ProducesProblem(StatusCodes.Status403Forbidden);

        // Everything after the fetch speaks for the agent that fetched the job.
        var reports = api.MapGroup("").AddEndpointFilter(AgentKeys.RequireBoundKey).ProducesProblem(StatusCodes.Status403Forbidden);

        reports.MapPost(RunnerApiRoutes.Logs, AppendLog)
            .WithName("RunnerAppendLog")
            .WithSummary("Append a chunk of log text at a byte offset")
            .WithDescription("Idempotent per offset. 409 when the offset is not where the log ends (the answer says where) or the job has finished.")
            .Accepts<string>("text/plain")
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge);

        reports.MapPost(RunnerApiRoutes.Events, RecordStepEvent)
            .WithName("RunnerRecordStepEvent")
            .WithSummary("Record a step starting or finishing")
            .Accepts<RunnerStepEvent>("application/json");

        reports.MapPost(RunnerApiRoutes.CacheEvents, RecordCacheEvent)
            .WithName("RunnerRecordCacheEvent")
            .WithSummary("Record a cache restored or saved: hit or miss, size, duration")
            .Accepts<RunnerCacheEvent>("application/json");

        reports.MapGet(RunnerApiRoutes.Commands, GetCommands)
            .WithName("RunnerGetCommands")
            .WithSummary("A session's commands from index ?from= on")
            .WithDescription("Long-polls up to ?waitSeconds= (0 to 25) while there are none; an empty list when none came. 409 once the session has ended.");

        reports.MapGet(RunnerApiRoutes.Terminal, TerminalApi.AttachAgent)
            .WithName("RunnerAttachTerminal")
            .WithSummary("An interactive session's pseudo-terminal (a WebSocket): its output out, keystrokes and resizes in")
            .ProducesProblem(StatusCodes.Status400BadRequest);

        reports.MapPost(RunnerApiRoutes.Complete, Complete)
            .WithName("RunnerComplete")
            .WithSummary("Report the job's result")
            .Accepts<RunnerCompletion>("application/json");

        return api;
    }

    public static async Task<Results<Ok<RunnerJob>, ProblemHttpResult>> GetJob(
        HttpRequest request, ClaimsPrincipal runner, JobUpdater jobs, IntakeDbContext db, JobSpecSeal seal, TimeProvider clock, CancellationToken ct)
    {
        var jobId = runner.JobId()!.Value;
        var attempt = runner.JobAttempt();
        var firstFetch = false;
        if (AgentKeys.HashOf(request) is not { } agentKey) return Problems.NotTheAgent();
        var tokenRepository = runner.FindFirst(JobTokenClaims.RepositoryClaim)?.Value;
        var otherAgent = false;
        var (outcome, job) = await jobs.UpdateAsync(jobId, null, change =>
        {
            if (change.Job.Repository != tokenRepository || change.Job.Status.IsTerminal() || change.Job.Attempt != attempt) return false;
            var binding = change.Job.BindAgent(agentKey);
            otherAgent = binding == AgentBinding.Other;
            firstFetch = binding == AgentBinding.Bound;
            if (otherAgent) return false;
            var moved = change.Job.TryMoveTo(JobStatus.Running, change.Now);
            return binding == AgentBinding.Bound || moved;
        }, ct);
        // A token whose coordinates do not match the job is treated like a token for no job.
        if (outcome == JobUpdateOutcome.NotFound || job!.Repository != tokenRepository) return Problems.JobNotFound(jobId);
        if (job.Status.IsTerminal()) return Finished(job);
        if (job.Attempt != attempt) return AttemptOver(job);
        if (otherAgent) return Problems.Conflict("Another agent fetched this job", "A job is run by the one agent that fetched it first.");
        if (firstFetch && outcome == JobUpdateOutcome.Applied) await RecordRunnerStartAsync(db, job, clock, ct);
        // The one place sealed maskedEnv values are opened: for the agent bound to this attempt.
        var spec = seal.Unseal(JsonSerializer.Deserialize<JobSpec>(job.Spec, JsonSerializerOptions.Web)!);
        return TypedResults.Ok(new RunnerJob(job.Id, spec, job.TraceParent));
    }

    /// <summary>The agent's first fetch is where its first step begins: measured from the provisioner's receipt.</summary>
    private static async Task RecordRunnerStartAsync(IntakeDbContext db, Job job, TimeProvider clock, CancellationToken ct)
    {
        var received = await db.JobEvents.Where(e => e.JobId == job.Id && e.Type == JobEventTypes.Provisioning)
            .OrderBy(e => e.Id).Select(e => new { e.At, e.Data }).FirstOrDefaultAsync(ct);
        if (received is null) return;
        var backend = received.Data is { } data ? JsonSerializer.Deserialize<ProvisioningData>(data, JsonSerializerOptions.Web)?.Backend : null;
        IntakeTelemetry.RunnerStarted(job.RunnerTemplate, backend, clock.GetUtcNow() - received.At);
    }

    public static async Task<Results<NoContent, ValidationProblem, ProblemHttpResult>> AppendLog(
        [FromQuery] string? offset, HttpRequest request, ClaimsPrincipal runner, JobLogStore logs, IJobLiveNotifier notifier, CancellationToken ct)
    {
        if (!long.TryParse(offset, out var at) || at < 0)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["offset"] = ["must be a byte offset (a whole number ≥ 0)"] });
        }
        var body = await RequestBody.ReadBytesAsync(request, JobLogStore.MaxChunkBytes, ct);
        if (body.Problem is { } problem) return problem;
        if (body.Value!.Length == 0) return TypedResults.NoContent();

        var jobId = runner.JobId()!.Value;
        var result = await logs.AppendAsync(jobId, runner.JobAttempt(), at, body.Value, ct);
        switch (result.Status)
        {
            case LogAppendStatus.Appended:
                await notifier.NotifyAsync(jobId);
                return TypedResults.NoContent();
            case LogAppendStatus.Duplicate:
                return TypedResults.NoContent();
            case LogAppendStatus.JobNotFound:
                return Problems.JobNotFound(jobId);
            case LogAppendStatus.JobFinished:
                return Finished(result.JobStatus ?? "over");
            case LogAppendStatus.AttemptOver:
                return Problems.Conflict("This runner's attempt is over", "Its log is closed to this runner: the job runs again on another runner.",
                    new Dictionary<string, object?> { [RunnerConflicts.Extension] = RunnerConflicts.AttemptOver });
            default:
                return Problems.Conflict("Wrong log offset",
                    $"The log of this job ends at byte {result.ExpectedOffset}; send the next chunk at that offset.",
                    new Dictionary<string, object?> { ["expectedOffset"] = result.ExpectedOffset });
        }
    }

    public static async Task<Results<NoContent, ValidationProblem, ProblemHttpResult>> RecordStepEvent(
        HttpRequest request, ClaimsPrincipal runner, JobUpdater jobs, CancellationToken ct)
    {
        var body = await RequestBody.ReadJsonAsync<RunnerStepEvent>(request, 64 * 1024, ct);
        if (body.Problem is { } problem) return problem;
        var e = body.Value!;
        var jobId = runner.JobId()!.Value;

        var errors = new Dictionary<string, string[]>();
        if (e.Type is not (JobEventTypes.StepStarted or JobEventTypes.StepFinished))
            errors["type"] = [$"must be {JobEventTypes.StepStarted} or {JobEventTypes.StepFinished}"];
        if (e.StepIndex < 0) errors["stepIndex"] = ["must be ≥ 0"];
        if (e.Type == JobEventTypes.StepFinished && e.ExitCode is null) errors["exitCode"] = ["is required when a step finishes"];
        if (e.StepName is { Length: > 200 }) errors["stepName"] = ["must be at most 200 characters"];
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);

        var attempt = runner.JobAttempt();
        var (outcome, job) = await jobs.UpdateAsync(jobId, StepEventId(e, attempt), change =>
        {
            if (change.Job.Status.IsTerminal() || change.Job.Attempt != attempt) return false;
            var spec = JsonSerializer.Deserialize<JobSpec>(change.Job.Spec, JsonSerializerOptions.Web);
            // An interactive session's one step is its shell (it has no spec'd steps).
            var stepCount = spec?.Session?.Interactive == true ? 1 : spec?.Steps?.Count ?? 0;
            if (e.StepIndex >= stepCount) return false;
            change.Job.TryMoveTo(JobStatus.Running, change.Now);
            var name = string.IsNullOrEmpty(e.StepName) ? $"step {e.StepIndex + 1}" : e.StepName;
            var message = e.Type == JobEventTypes.StepStarted ? $"{name} started" : $"{name} finished with exit code {e.ExitCode}";
            change.AddEvent(e.Type, message, new { e.StepIndex, e.StepName, e.ExitCode, Attempt = attempt }, e.At == default ? change.Now : e.At);
            return true;
        }, ct);

        return outcome switch
        {
            JobUpdateOutcome.NotFound => Problems.JobNotFound(jobId),
            JobUpdateOutcome.Unchanged when job!.Status.IsTerminal() => Finished(job),
            JobUpdateOutcome.Unchanged when job.Attempt != attempt => AttemptOver(job),
            JobUpdateOutcome.Unchanged => TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["stepIndex"] = ["is not a step of this job"] }),
            _ => TypedResults.NoContent(),
        };
    }

    public static async Task<Results<NoContent, ValidationProblem, ProblemHttpResult>> RecordCacheEvent(
        HttpRequest request, ClaimsPrincipal runner, JobUpdater jobs, CancellationToken ct)
    {
        var body = await RequestBody.ReadJsonAsync<RunnerCacheEvent>(request, 64 * 1024, ct);
        if (body.Problem is { } problem) return problem;
        var e = body.Value!;
        var jobId = runner.JobId()!.Value;

        var errors = new Dictionary<string, string[]>();
        if (e.Operation is not ("restore" or "save")) errors["operation"] = ["must be restore or save"];
        if (string.IsNullOrEmpty(e.Key) || e.Key.Length > 512) errors["key"] = ["must be 1 to 512 characters"];
        if (string.IsNullOrEmpty(e.Result) || e.Result.Length > 64) errors["result"] = ["must be 1 to 64 characters"];
        if (e.MatchedKey is { Length: > 512 }) errors["matchedKey"] = ["must be at most 512 characters"];
        if (e.Bytes < 0) errors["bytes"] = ["must be ≥ 0"];
        if (e.DurationMs < 0) errors["durationMs"] = ["must be ≥ 0"];
        if (e.Error is { Length: > 2000 }) errors["error"] = ["must be at most 2000 characters"];
        if (e.Sha256 is not null && !System.Text.RegularExpressions.Regex.IsMatch(e.Sha256, "^[0-9a-fA-F]{64}$")) errors["sha256"] = ["must be 64 hex digits (a SHA-256)"];
        if (e.Scope is { Length: > 256 } || (e.Scope is not null && !e.Scope.StartsWith("refs/", StringComparison.Ordinal))) errors["scope"] = ["must be a ref (refs/…) of at most 256 characters"];
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);

        var type = e.Operation == "restore" ? JobEventTypes.CacheRestore : JobEventTypes.CacheSave;
        var attempt = runner.JobAttempt();
        var (outcome, job) = await jobs.UpdateAsync(jobId, CacheEventId(e, attempt), change =>
        {
            if (change.Job.Status.IsTerminal() || change.Job.Attempt != attempt) return false;
            var message = $"cache {e.Operation} '{e.Key}': {e.Result}" + (e.Error is null ? "" : $" ({e.Error})");
            change.AddEvent(type, message, new { e.Key, e.Result, e.MatchedKey, e.Bytes, e.DurationMs, e.Error, e.Sha256, e.Scope, Attempt = attempt }, e.At == default ? change.Now : e.At);
            return true;
        }, ct);

        return outcome switch
        {
            JobUpdateOutcome.NotFound => Problems.JobNotFound(jobId),
            JobUpdateOutcome.Unchanged when job!.Attempt != attempt && !job.Status.IsTerminal() => AttemptOver(job),
            JobUpdateOutcome.Unchanged => Finished(job!),
            _ => TypedResults.NoContent(),
        };
    }

    public const int MaxCommandWaitSeconds = 25;

    public static async Task<Results<Ok<RunnerCommands>, ValidationProblem, ProblemHttpResult>> GetCommands(
        [FromQuery] string? from, [FromQuery] string? waitSeconds, ClaimsPrincipal runner, IntakeDbContext db, IJobLiveNotifier notifier, JobSpecSeal seal, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (!int.TryParse(from, out var first) || first < 0) errors["from"] = ["must be a command index (a whole number ≥ 0)"];
        var wait = 0;
        if (waitSeconds is not null && (!int.TryParse(waitSeconds, out wait) || wait is < 0 or > MaxCommandWaitSeconds))
            errors["waitSeconds"] = [$"must be 0 to {MaxCommandWaitSeconds}"];
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);

        var jobId = runner.JobId()!.Value;
        var attempt = runner.JobAttempt();
        var until = DateTimeOffset.UtcNow.AddSeconds(wait);
        await using var wakeup = await notifier.SubscribeAsync(jobId);
        while (true)
        {
            var job = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == jobId, ct);
            if (job is null) return Problems.JobNotFound(jobId);
            if (job.Status.IsTerminal()) return Finished(job);
            if (job.Attempt != attempt) return AttemptOver(job);
            var spec = job.ParsedSpec();
            if (spec.Session is null) return Problems.Conflict("Not a session", "This job's steps are all in its spec.");
            var steps = spec.Steps ?? [];
            var left = until - DateTimeOffset.UtcNow;
            if (steps.Count > first || left <= TimeSpan.Zero) return TypedResults.Ok(new RunnerCommands(first, seal.Unseal(steps.Skip(first), spec.MaskedEnv)));
            try
            {
                await wakeup.WaitAsync(left < JobLogFollower.PollInterval ? left : JobLogFollower.PollInterval, ct);
            }
            catch (OperationCanceledException)
            {
                return TypedResults.Ok(new RunnerCommands(first, []));
            }
        }
    }

    private sealed record ProvisioningData(string? Backend);

    /// <summary>One timeline entry per cache and operation (and attempt), however often the agent retries the POST.</summary>
    internal static Guid CacheEventId(RunnerCacheEvent e, int attempt = 1) => EventId($"runner-cache:{e.Operation}:{e.Key}", attempt);

    public static async Task<Results<NoContent, ProblemHttpResult>> Complete(
        HttpRequest request, ClaimsPrincipal runner, JobUpdater jobs, CancellationToken ct)
    {
        var body = await RequestBody.ReadJsonAsync<RunnerCompletion>(request, 64 * 1024, ct);
        if (body.Problem is { } problem) return problem;
        var c = body.Value!;
        var jobId = runner.JobId()!.Value;
        var attempt = runner.JobAttempt();

        var (outcome, _) = await jobs.UpdateAsync(jobId, null, change =>
        {
            if (change.Job.Attempt != attempt) return false;
            var status = c.Succeeded ? JobStatus.Succeeded : JobStatus.Failed;
            var reason = c.Succeeded
                ? "all steps succeeded"
                : c.FailedStepIndex is { } step ? $"step {step + 1} failed with exit code {c.ExitCode}" : $"the runner reported failure (exit code {c.ExitCode})";
            // Already terminal (cancelled, timed out, or a repeated call): the first result stands.
            if (!change.Job.TryMoveTo(status, change.Now, reason, c.ExitCode)) return false;
            change.AddEvent(JobEventTypes.ForTerminal(status), reason, new { c.ExitCode, c.FailedStepIndex });
            return true;
        }, ct);
        return outcome == JobUpdateOutcome.NotFound ? Problems.JobNotFound(jobId) : TypedResults.NoContent();
    }

    /// <summary>A stable id per (type, step) so a retried call is recognised by the timeline's unique index.</summary>
    internal static Guid StepEventId(RunnerStepEvent e, int attempt = 1) => EventId($"runner-step:{e.Type}:{e.StepIndex}", attempt);

    // A retried job's next attempt runs the same steps and caches again: its entries are its own, not repeats.
    private static Guid EventId(string name, int attempt)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(attempt > 1 ? $"{name}:attempt-{attempt}" : name));
        return new Guid(hash.AsSpan(0, 16));
    }

    /// <summary>409 to a runner whose job is over: the agent stops quietly on it (<see cref="RunnerConflicts.JobEnded"/>).</summary>
    internal static ProblemHttpResult Finished(Job job) => Finished(JobStatusNames.ToName(job.Status));

    private static ProblemHttpResult Finished(string status) =>
        Problems.Conflict("The job has finished", $"The job is {status}.",
            new Dictionary<string, object?> { [RunnerConflicts.Extension] = RunnerConflicts.JobEnded, [RunnerConflicts.JobStatusExtension] = status });

    /// <summary>409 to a runner of a lost attempt: still a refusal to the agent (<see cref="RunnerConflicts.AttemptOver"/>).</summary>
    internal static ProblemHttpResult AttemptOver(Job job) =>
        Problems.Conflict("This runner's attempt is over", $"The job runs again as attempt {job.Attempt} on another runner.",
            new Dictionary<string, object?> { [RunnerConflicts.Extension] = RunnerConflicts.AttemptOver, ["attempt"] = job.Attempt });
}
