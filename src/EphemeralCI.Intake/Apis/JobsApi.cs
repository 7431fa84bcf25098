using System.Security.Claims;
using System.Text.Json;
using EphemeralCI.Attestations;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Attestations;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Auth;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Logs;
using EphemeralCI.Intake.Model;
using EphemeralCI.Intake.Services;
using EphemeralCI.RunnerTemplates;
using EphemeralCI.Intake.Validation;
using EphemeralCI.Intake.WebUi;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Net.Http.Headers;

namespace EphemeralCI.Intake.Apis;

/// <summary>The public jobs API used by CI systems.</summary>
public static class JobsApi
{
    public const int MaxBodyBytes = 1024 * 1024;
    public const int MaxIdempotencyKeyLength = 255;
    public const int DefaultPageSize = 20;
    public const int MaxPageSize = 100;

    public static RouteGroupBuilder MapJobsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1/jobs").WithTags("Jobs")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden);

        api.MapPost("/", SubmitJob)
            .WithName("SubmitJob")
            .WithSummary("Submit a job")
            .Accepts<JobSpec>("application/json")
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .WithDescription("Validates the job spec and queues it for a brand-new runner. Send an Idempotency-Key header to make retries safe. " +
                             "A repository, ref, runner template or environment the credential may not claim is 403 naming the field.")
            .RequireScope(ApiKeyScopes.Submit);

        api.MapGet("/", ListJobs)
            .WithName("ListJobs")
            .WithSummary("List jobs, newest first")
            .WithDescription("Page with ?cursor= (the previous page's nextCursor; stays fast however deep). ?page= still works but is " +
                             "deprecated: it counts and skips every earlier row. Only the first page and ?page= pages carry page and totalCount.")
            .RequireScope(ApiKeyScopes.Read);

        api.MapGet("/{id:guid}", GetJob)
            .WithName("GetJob")
            .WithSummary("Get a job")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .RequireScope(ApiKeyScopes.Read);

        api.MapPost("/{id:guid}/cancel", CancelJob)
            .WithName("CancelJob")
            .WithSummary("Cancel a job")
            .WithDescription("A job that has not finished becomes cancelled at once and its runner is destroyed.")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .RequireScope(ApiKeyScopes.Submit);

        api.MapGet("/{id:guid}/events", GetTimeline)
            .WithName("GetJobEvents")
            .WithSummary("Get a job's timeline")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .RequireScope(ApiKeyScopes.Read);

        api.MapGet("/{id:guid}/attestation", GetAttestation)
            .WithName("GetJobAttestation")
            .WithSummary("Get a job's signed attestation")
            .WithDescription("A DSSE envelope holding an in-toto statement of what the job's runner was, got and left (docs/attestation.md), " +
                             "signed by the secrets broker's key (its JWKS). 404 until the job is over and its runner destroyed and checked.")
            .Produces<DsseEnvelope>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .RequireScope(ApiKeyScopes.Read);

        api.MapGet("/{id:guid}/logs", GetLogs)
            .WithName("GetJobLogs")
            .WithSummary("Get a job's log")
            .WithDescription("The whole log as text/plain, or with ?follow=true (or Accept: text/event-stream) a live stream of server-sent " +
                             "'log' events ending with an 'end' event that carries the final status.")
            .Produces<string>(StatusCodes.Status200OK, "text/plain", "text/event-stream")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .RequireScope(ApiKeyScopes.Read);

        return api;
    }

    public static async Task<Results<Accepted<JobAccepted>, ValidationProblem, ProblemHttpResult>> SubmitJob(
        HttpRequest request,
        [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey,
        ClaimsPrincipal user,
        RunnerTemplateCatalog templates,
        JobSubmissionService submissions,
        CancellationToken ct)
    {
        if (idempotencyKey is not null && !IsValidIdempotencyKey(idempotencyKey))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                ["Idempotency-Key"] = [$"must be 1 to {MaxIdempotencyKeyLength} visible ASCII characters"],
            });
        }

        var body = await RequestBody.ReadJsonAsync<JobSpec>(request, MaxBodyBytes, ct);
        if (body.Problem is { } problem) return problem;
        if (body.Value!.Session is not null)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["session"] = ["is for sessions: open one with POST /api/v1/sessions"] },
                title: "The job spec is not valid");
        }
        var submitted = await SubmitSpecAsync(body.Value, idempotencyKey, user, templates, submissions, ct);
        if (submitted.Invalid is { } invalid) return invalid;
        if (submitted.Refused is { } refused) return refused;
        var job = submitted.Job!;
        return TypedResults.Accepted($"/api/v1/jobs/{job.Id}", new JobAccepted(job.Id, job.Status, JobLinks.For(job.Id)));
    }

    /// <summary>
    /// The one way a spec becomes a job (jobs and sessions alike): the verified identity filled in, validated,
    /// checked against what the credential may claim, then stored with its outbox message.
    /// </summary>
    internal static async Task<Submission> SubmitSpecAsync(
        JobSpec body, string? idempotencyKey, ClaimsPrincipal user, RunnerTemplateCatalog templates, JobSubmissionService submissions, CancellationToken ct)
    {
        var access = user.JobAccess();
        // A federated token vouches for repository, ref and commit: the body may leave them out.
        var spec = access.WithVerifiedIdentity(body);

        var template = templates.Find(spec.RunnerTemplate);
        var errors = JobSpecValidator.Validate(spec, template);
        if (errors.Count > 0) return new(null, TypedResults.ValidationProblem(errors, title: "The job spec is not valid"), null);
        // Before anything is stored, and before the template's existence is told to a caller who may not use it.
        if (access.CheckSubmission(spec) is { } refusal) return new(null, null, Problems.ForbiddenField(refusal.Field, refusal.Detail));
        if (template is null)
        {
            return new(null, null, Problems.UnprocessableField("runnerTemplate", "Unknown runner template",
                $"runnerTemplate '{spec.RunnerTemplate}' is not defined; known templates: {string.Join(", ", templates.Names.Order())}"));
        }

        var (outcome, job) = await submissions.SubmitAsync(spec, template, new JobSubmitter(access.ApiKeyId, access.SubmittedBy), idempotencyKey, ct);
        if (outcome == SubmissionOutcome.KeyReused)
        {
            return new(null, null, Problems.UnprocessableField("Idempotency-Key", "Idempotency-Key reused",
                "This Idempotency-Key was already used with a different job spec; use a new key for a new job."));
        }
        return new(job, null, null);
    }

    /// <summary>A stored job, or why not: a spec that is not valid, or a refusal.</summary>
    internal sealed record Submission(Job? Job, ValidationProblem? Invalid, ProblemHttpResult? Refused);

    public static async Task<Results<Ok<JobPage>, ValidationProblem>> ListJobs(
        [AsParameters] ListJobsQuery query, ClaimsPrincipal user, IntakeDbContext db, CancellationToken ct)
    {
        var errors = query.Validate(out var status, out var page, out var pageSize, out var cursor);
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);

        var jobs = user.JobAccess().Visible(db.Jobs.AsNoTracking());
        if (status is { } s) jobs = jobs.Where(j => j.Status == s);
        if (!string.IsNullOrEmpty(query.Repository)) jobs = jobs.Where(j => j.Repository == query.Repository);

        // After a cursor: the web UI's keyset query, without the count (counting and skipping make deep pages slow).
        if (cursor is not null)
        {
            var (rows, next) = await JobsPageQuery.PageAsync(jobs, cursor, pageSize, ct);
            return TypedResults.Ok(new JobPage(rows.Select(JobSummary.From).ToList(), null, pageSize, null, next));
        }
        // The first page (with the total, as before), or a deprecated ?page=N (OFFSET, kept for old clients).
        var total = await jobs.CountAsync(ct);
        var items = await jobs
            .OrderByDescending(j => j.CreatedAt).ThenByDescending(j => j.Id)
            .Skip((page - 1) * pageSize).Take(pageSize + 1)
            .ToListAsync(ct);
        var shown = items.Take(pageSize).ToList();
        var nextCursor = items.Count > pageSize ? JobsPageQuery.Cursor(shown[^1]) : null;
        return TypedResults.Ok(new JobPage(shown.Select(JobSummary.From).ToList(), page, pageSize, total, nextCursor));
    }

    public static async Task<Results<Ok<JobSummary>, ProblemHttpResult>> GetJob(Guid id, ClaimsPrincipal user, IntakeDbContext db, CancellationToken ct)
    {
        var job = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, ct);
        // Another repository's job answers exactly like a job that does not exist.
        return job is null || !user.JobAccess().MaySee(job.Repository) ? Problems.JobNotFound(id) : TypedResults.Ok(JobSummary.From(job));
    }

    /// <summary>True when the job exists and the caller may see it (its repository never changes, so checking first is safe).</summary>
    internal static async Task<bool> IsVisibleAsync(Guid id, ClaimsPrincipal user, IntakeDbContext db, CancellationToken ct) =>
        await db.Jobs.AsNoTracking().Where(j => j.Id == id).Select(j => j.Repository).FirstOrDefaultAsync(ct) is { } repository
        && user.JobAccess().MaySee(repository);

    public static async Task<Results<Ok<JobSummary>, ProblemHttpResult>> CancelJob(
        Guid id, ClaimsPrincipal user, IntakeDbContext db, JobUpdater jobs, CancellationToken ct)
    {
        if (!await IsVisibleAsync(id, user, db, ct)) return Problems.JobNotFound(id);
        var who = user.Identity?.Name ?? "an API key";
        var (outcome, job) = await jobs.UpdateAsync(id, null, change =>
        {
            if (!change.Job.TryMoveTo(JobStatus.Cancelled, change.Now, $"cancelled by {who}")) return false;
            change.AddEvent(JobEventTypes.CancelRequested, $"cancel requested by {who}");
            change.AddEvent(JobEventTypes.Cancelled, "cancelled");
            change.Publish(new CancelJob(change.Job.Id, change.Now));
            return true;
        }, ct);
        return outcome switch
        {
            JobUpdateOutcome.NotFound => Problems.JobNotFound(id),
            JobUpdateOutcome.Applied => TypedResults.Ok(JobSummary.From(job!)),
            _ => Problems.Conflict("The job has already finished",
                $"Job {id} is {JobStatusNames.ToName(job!.Status)} and can no longer be cancelled."),
        };
    }

    public static async Task<Results<Ok<JobTimeline>, ProblemHttpResult>> GetTimeline(Guid id, ClaimsPrincipal user, IntakeDbContext db, CancellationToken ct)
    {
        if (!await IsVisibleAsync(id, user, db, ct)) return Problems.JobNotFound(id);
        var events = await db.JobEvents.AsNoTracking()
            .Where(e => e.JobId == id)
            .OrderBy(e => e.At).ThenBy(e => e.Id)
            .ToListAsync(ct);
        return TypedResults.Ok(new JobTimeline(id, events
            .Select(e => new JobEventItem(e.Type, e.At, e.Message, e.Data is null ? null : JsonDocument.Parse(e.Data).RootElement.Clone()))
            .ToList()));
    }

    public static async Task<Results<Ok<DsseEnvelope>, ProblemHttpResult>> GetAttestation(Guid id, ClaimsPrincipal user, IntakeDbContext db, CancellationToken ct)
    {
        if (!await IsVisibleAsync(id, user, db, ct)) return Problems.JobNotFound(id);
        var attested = await db.JobEvents.AsNoTracking().Where(e => e.JobId == id && e.Type == JobEventTypes.Attested).OrderBy(e => e.Id).FirstOrDefaultAsync(ct);
        return JobAttestor.EnvelopeOf(attested) is { } envelope
            ? TypedResults.Ok(envelope)
            : TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "No attestation yet",
                detail: $"Job {id} has no attestation yet: it is signed once the job is over and its runner destroyed and checked.");
    }

    public static async Task<Results<ServerSentEventsResult<string>, ContentHttpResult, ProblemHttpResult>> GetLogs(
        Guid id, string? follow, HttpRequest request, ClaimsPrincipal user, IntakeDbContext db, JobLogFollower follower, JobLogStore store, CancellationToken ct)
    {
        if (!await IsVisibleAsync(id, user, db, ct)) return Problems.JobNotFound(id);

        var wantsStream = follow is "true" or "1" || request.GetTypedHeaders().Accept.Any(a => a.MediaType.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase));
        if (wantsStream)
        {
            return TypedResults.ServerSentEvents(follower.FollowAsync(id, JobLogFollower.ResumeOffset(request), ct));
        }

        return TypedResults.Text(await store.ReadAllAsync(id, ct), "text/plain; charset=utf-8");
    }

    private static bool IsValidIdempotencyKey(string key) =>
        key.Length is > 0 and <= MaxIdempotencyKeyLength && key.All(c => c is >= '!' and <= '~');
}

public sealed record ListJobsQuery(string? Status, string? Repository, string? Page, string? PageSize, string? Cursor)
{
    public const int MaxPage = 1_000_000;

    // Query values are bound as text and checked here, so a bad value is a 400 naming the
    // parameter instead of the framework's bare 400.
    public Dictionary<string, string[]> Validate(out JobStatus? status, out int page, out int pageSize, out (DateTimeOffset At, Guid Id)? cursor)
    {
        var errors = new Dictionary<string, string[]>();
        status = null;
        if (!string.IsNullOrEmpty(Status))
        {
            if (JobStatusNames.TryParse(Status, out var s)) status = s;
            else errors["status"] = [$"must be one of: {string.Join(", ", JobStatusNames.All)}"];
        }
        page = 1;
        if (Page is not null && (!int.TryParse(Page, out page) || page < 1 || page > MaxPage))
        {
            errors["page"] = [$"must be a whole number from 1 to {MaxPage}"];
        }
        pageSize = JobsApi.DefaultPageSize;
        if (PageSize is not null && (!int.TryParse(PageSize, out pageSize) || pageSize < 1 || pageSize > JobsApi.MaxPageSize))
        {
            errors["pageSize"] = [$"must be a whole number from 1 to {JobsApi.MaxPageSize}"];
        }
        cursor = JobsPageQuery.ParseCursor(Cursor);
        if (!string.IsNullOrEmpty(Cursor) && cursor is null) errors["cursor"] = ["must be a nextCursor this API returned"];
        if (!string.IsNullOrEmpty(Cursor) && Page is not null) errors["page"] = ["cannot be combined with cursor: follow nextCursor instead"];
        if (Repository is { Length: > JobSpecValidator.MaxRepositoryLength })
        {
            errors["repository"] = [$"must be at most {JobSpecValidator.MaxRepositoryLength} characters"];
        }
        return errors;
    }
}
