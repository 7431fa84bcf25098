using System.Globalization;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Security.Claims;
using EphemeralCI.Attestations;
using EphemeralCI.Contracts.Admin;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Attestations;
using EphemeralCI.Intake.Apis;
using EphemeralCI.Intake.Auth;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Logs;
using EphemeralCI.Intake.Model;
using EphemeralCI.Intake.Services;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace EphemeralCI.Intake.WebUi;

/*
 * The web UI: server-rendered HTML pages with one small script for the live log (/ui/job.js).
 * Why not Blazor: every page here is a read of the database rendered once — static server rendering
 * is all Blazor would do for them — and the one live part is an EventSource appending lines, which a
 * circuit or WebAssembly would only make heavier. Plain endpoints keep the intake a class library the
 * two hosts compose without the Razor SDK or static web assets, and keep the pages beside the JSON
 * API's handlers, which they call for the same rules (who may see a job, cancel, the log).
 */
public static class WebUiEndpoints
{
    public const int PageSize = 50;

    public static IEndpointRouteBuilder MapWebUi(this IEndpointRouteBuilder app)
    {
        var ui = app.MapGroup("").ExcludeFromDescription();
        ui.MapGet("/signin", SignInForm);
        ui.MapPost("/signin", SignIn);
        ui.MapGet("/ui/{file}", Asset);

        var pages = ui.MapGroup("").RequireAuthorization(WebUiAuth.Policy);
        pages.MapPost("/signout", SignOut);
        pages.MapGet("/", JobsPage);
        pages.MapGet("/jobs/{id:guid}", JobPage);
        pages.MapGet("/runners", RunnersPage);
        pages.MapGet("/admin/secrets", SecretsPage);
        pages.MapGet("/admin/cache", CachePage);
        pages.MapPost("/admin/cache/entries/{id:long}/delete", DeleteCacheEntry);
        pages.MapPost("/admin/{target:regex(^(secrets|cache)$)}/unlock", Unlock);
        pages.MapPost("/admin/{target:regex(^(secrets|cache)$)}/lock", Lock);
        pages.MapGet("/jobs/{id:guid}/log", RawLog);
        pages.MapGet("/jobs/{id:guid}/log/live", LiveLog);
        pages.MapGet("/jobs/{id:guid}/attestation", Attestation);
        pages.MapPost("/jobs/{id:guid}/cancel", Cancel);
        return app;
    }

    private static IResult SignInForm(string? returnUrl, HttpContext http, IAntiforgery antiforgery) =>
        Html.Page("Sign in", Pages.SignIn(returnUrl, null, antiforgery.GetAndStoreTokens(http).RequestToken), antiforgeryToken: null, signedIn: false);

    private static async Task<IResult> SignIn(HttpContext http, IAntiforgery antiforgery, IntakeDbContext db, CancellationToken ct)
    {
        if (await RefusedFormAsync(http, antiforgery) is { } refused) return refused;
        var form = await http.Request.ReadFormAsync(ct);
        var returnUrl = form["returnUrl"].ToString();
        var (key, failure) = await ApiKeyAuthenticationHandler.FindAsync(db, form["key"].ToString().Trim(), ct);
        var principal = key is null ? null : ApiKeyAuthenticationHandler.PrincipalOf(key, WebUiAuth.Scheme);
        var error = key is null ? $"That key was not accepted ({failure})."
            : !WebUiAuth.MayUse(principal!) ? "That key may not read jobs: it needs the read scope and at least one repository." : null;
        if (error is not null)
        {
            return Html.Page("Sign in", Pages.SignIn(returnUrl, error, antiforgery.GetAndStoreTokens(http).RequestToken), null, signedIn: false,
                statusCode: StatusCodes.Status401Unauthorized);
        }
        await http.SignInAsync(WebUiAuth.Scheme, principal!, new AuthenticationProperties { IsPersistent = false, AllowRefresh = false });
        return Results.Redirect(IsLocal(returnUrl) ? returnUrl : "/");
    }

    private static async Task<IResult> SignOut(HttpContext http, IAntiforgery antiforgery)
    {
        if (await RefusedFormAsync(http, antiforgery) is { } refused) return refused;
        await http.SignOutAsync(WebUiAuth.Scheme);
        return Results.Redirect("/signin");
    }

    private static async Task<IResult> JobsPage([AsParameters] JobsPageQuery query, HttpContext http,
        IntakeDbContext db, IAntiforgery antiforgery, TimeProvider clock, CancellationToken ct)
    {
        if (query.Validate() is { } problem)
        {
            return Html.Page("Jobs", Pages.Message("Filter not understood", problem), Token(http, antiforgery), true, StatusCodes.Status400BadRequest);
        }
        var filters = query.Filters;
        var jobs = http.User.JobAccess().Visible(db.Jobs.AsNoTracking());
        if (filters.Repository is { } repository) jobs = jobs.Where(j => j.Repository == repository);
        if (filters.Ref is { } gitRef) jobs = jobs.Where(j => j.Ref == gitRef);
        if (filters.Template is { } template) jobs = jobs.Where(j => j.RunnerTemplate == template);
        if (filters.StatusValue is { } s) jobs = jobs.Where(j => j.Status == s);
        if (filters.FromValue is { } from) jobs = jobs.Where(j => j.CreatedAt >= from);
        if (filters.ToValue is { } to) jobs = jobs.Where(j => j.CreatedAt < to);
        // Keyset paging: the next page starts after the last row shown (JobsPageQuery.PageAsync).
        var (shown, next) = await JobsPageQuery.PageAsync(jobs, filters.Cursor, PageSize, ct);
        var view = new JobsView(filters, shown, next, clock.GetUtcNow());
        return Html.Page("Jobs", Pages.Jobs(view), Token(http, antiforgery), signedIn: true, admin: WebUiAuth.IsAdmin(http.User));
    }

    private static async Task<IResult> JobPage(Guid id, HttpContext http, IntakeDbContext db, JobLogStore logs, IAntiforgery antiforgery,
        AttestationCheck attestations, TimeProvider clock, CancellationToken ct)
    {
        var job = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, ct);
        // Another repository's job answers exactly like a job that does not exist, as in the API.
        if (job is null || !http.User.JobAccess().MaySee(job.Repository)) return NotFound(http, antiforgery, id);
        var events = await db.JobEvents.AsNoTracking().Where(e => e.JobId == id).OrderBy(e => e.At).ThenBy(e => e.Id).ToListAsync(ct);
        // A finished job's log is rendered here; a running job's comes through the live stream.
        var log = job.Status.IsTerminal() ? AnsiHtml.Render(await logs.ReadAllAsync(id, ct)) : null;
        var envelope = JobAttestor.EnvelopeOf(events.FirstOrDefault(e => e.Type == JobEventTypes.Attested));
        var attestation = envelope is null ? null
            : await attestations.VerifyAsync(envelope, new ExpectedSubject(job.Id, job.Repository, job.CommitSha), ct);
        var details = new JobDetails(Pages.StepsOf(job, events), JobDetails.CachesOf(job, events), attestation);
        var body = Pages.Job(job, events, details, log, WebUiAuth.MayCancel(http.User), Token(http, antiforgery), clock.GetUtcNow());
        return Html.Page(job.Name ?? "Job", body, Token(http, antiforgery), signedIn: true, script: "job.js", admin: WebUiAuth.IsAdmin(http.User));
    }

    /// <summary>
    /// What runs now and what waits, from the timeline entries the provisioner reported for each job not over
    /// (provisioning on a backend, runner started, held back by a limit and why) — only the jobs this key may see —
    /// and the warm pools (templates and counts only: they hold no job).
    /// </summary>
    private static async Task<IResult> RunnersPage(HttpContext http, IntakeDbContext db, IAntiforgery antiforgery, TimeProvider clock, CancellationToken ct)
    {
        var active = await http.User.JobAccess().Visible(db.Jobs.AsNoTracking())
            .Where(j => j.Status == JobStatus.Queued || j.Status == JobStatus.Provisioning || j.Status == JobStatus.Running)
            .OrderBy(j => j.CreatedAt).Take(RunnersView.MaxJobs + 1).ToListAsync(ct);
        var ids = active.Select(j => j.Id).ToList();
        var events = await db.JobEvents.AsNoTracking()
            .Where(e => ids.Contains(e.JobId) && (e.Type == JobEventTypes.Provisioning || e.Type == JobEventTypes.RunnerStarted || e.Type == JobEventTypes.Waiting))
            .OrderBy(e => e.At).ThenBy(e => e.Id).ToListAsync(ct);
        // As the provisioners last reported them (WarmPoolReport): a small table, pruned as reports come in.
        var warm = await db.ReportedWarmPools.AsNoTracking().ToListAsync(ct);
        var view = RunnersView.Of(active, events, warm, clock.GetUtcNow());
        return Html.Page("Runners", Pages.Runners(view), Token(http, antiforgery), signedIn: true, admin: WebUiAuth.IsAdmin(http.User));
    }

    /// <summary>
    /// Secrets (admin keys only; anyone else gets the not-found page): names, versions and policies, and the
    /// broker's newest audit lines — who was issued or refused which secret, when. Never a value: the view the
    /// broker hands out has none. Read in process where the broker shares it (the all-in-one server).
    /// </summary>
    private static async Task<IResult> SecretsPage(HttpContext http, IAntiforgery antiforgery, CancellationToken ct) =>
        await SecretsPageAsync(http, antiforgery, null, ct);

    private static async Task<IResult> SecretsPageAsync(HttpContext http, IAntiforgery antiforgery, string? unlockError, CancellationToken ct)
    {
        if (!WebUiAuth.IsAdmin(http.User)) return NotAdmin(http, antiforgery);
        var broker = await AdminUnlock.SecretsAsync(http);
        if (broker is { View: null, Configured: true }) return LockedPage(http, antiforgery, AdminTarget.Secrets, unlockError);
        try
        {
            var view = broker.View is not { } b ? null
                : new SecretsView(await b.SecretsAsync(ct), await b.RecentAuditAsync(SecretsView.AuditLines, ct));
            var remote = view is not null && http.RequestServices.GetService<ISecretsAdminView>() is null;
            return Html.Page("Secrets", Pages.Secrets(view) + (remote ? Pages.LockForm("secrets", Token(http, antiforgery)) : ""),
                Token(http, antiforgery), signedIn: true, admin: true);
        }
        catch (AdminTokenRefusedException)
        {
            // The broker's token changed since it was pasted: forget it and ask again.
            await AdminUnlock.LockAsync(http, AdminTarget.Secrets);
            return LockedPage(http, antiforgery, AdminTarget.Secrets, "The secrets broker no longer accepts the token; paste the current one.");
        }
        catch (HttpRequestException ex)
        {
            return Unreachable(http, antiforgery, "Secrets", ex);
        }
    }

    /// <summary>Cache (admin keys only): usage per repository and scope against the quota, the newest entries, and deletion.</summary>
    private static async Task<IResult> CachePage(string? repository, HttpContext http, IAntiforgery antiforgery, CancellationToken ct) =>
        await CachePageAsync(repository, http, antiforgery, null, ct);

    private static async Task<IResult> CachePageAsync(string? repository, HttpContext http, IAntiforgery antiforgery, string? unlockError, CancellationToken ct)
    {
        if (!WebUiAuth.IsAdmin(http.User)) return NotAdmin(http, antiforgery);
        var cache = await AdminUnlock.CacheAsync(http);
        if (cache is { View: null, Configured: true }) return LockedPage(http, antiforgery, AdminTarget.Cache, unlockError);
        var filter = string.IsNullOrWhiteSpace(repository) ? null : repository.Trim();
        try
        {
            CacheAdminPage? view = null;
            if (cache.View is { } c)
            {
                var usage = await c.UsageAsync(ct);
                view = new CacheAdminPage(c.RepositoryQuotaBytes, usage, await c.EntriesAsync(filter, CacheAdminPage.MaxEntries, ct), filter);
            }
            var remote = view is not null && http.RequestServices.GetService<ICacheAdminView>() is null;
            return Html.Page("Cache", Pages.Cache(view, Token(http, antiforgery)) + (remote ? Pages.LockForm("cache", Token(http, antiforgery)) : ""),
                Token(http, antiforgery), signedIn: true, admin: true);
        }
        catch (AdminTokenRefusedException)
        {
            await AdminUnlock.LockAsync(http, AdminTarget.Cache);
            return LockedPage(http, antiforgery, AdminTarget.Cache, "The cache no longer accepts the token; paste the current one.");
        }
        catch (HttpRequestException ex)
        {
            return Unreachable(http, antiforgery, "Cache", ex);
        }
    }

    private static async Task<IResult> DeleteCacheEntry(long id, HttpContext http, IAntiforgery antiforgery, CancellationToken ct)
    {
        if (await RefusedFormAsync(http, antiforgery) is { } refused) return refused;
        if (!WebUiAuth.IsAdmin(http.User)) return NotAdmin(http, antiforgery);
        bool deleted;
        try
        {
            deleted = (await AdminUnlock.CacheAsync(http)).View is { } cache && await cache.DeleteAsync(id, ct);
        }
        catch (AdminTokenRefusedException)
        {
            await AdminUnlock.LockAsync(http, AdminTarget.Cache);
            return Results.Redirect("/admin/cache");
        }
        catch (HttpRequestException ex)
        {
            return Unreachable(http, antiforgery, "Cache", ex);
        }
        if (!deleted)
        {
            return Html.Page("Not found", Pages.Message("Not found", $"There is no cache entry {id}."), Token(http, antiforgery), true, StatusCodes.Status404NotFound, admin: true);
        }
        return Results.Redirect("/admin/cache");
    }

    /// <summary>
    /// Unlock: an admin pastes the broker's (or the cache's) admin token. It is tried once against that admin API;
    /// refused, the form says so and nothing is kept; accepted, it is kept in the encrypted session cookie only.
    /// The intake itself is never configured with these tokens (least privilege).
    /// </summary>
    private static async Task<IResult> Unlock(string target, HttpContext http, IAntiforgery antiforgery, CancellationToken ct)
    {
        if (await RefusedFormAsync(http, antiforgery) is { } refused) return refused;
        if (!WebUiAuth.IsAdmin(http.User)) return NotAdmin(http, antiforgery);
        var which = target == "secrets" ? AdminTarget.Secrets : AdminTarget.Cache;
        if (AdminUnlock.Url(http, which) is null || http.RequestServices.GetService(which == AdminTarget.Secrets ? typeof(ISecretsAdminView) : typeof(ICacheAdminView)) is not null)
        {
            return Results.Redirect($"/admin/{target}");
        }
        var token = (await http.Request.ReadFormAsync(ct))["token"].ToString().Trim();
        string? error = null;
        if (token.Length == 0) error = "Paste the admin token.";
        // It goes into an Authorization header: a newline or a control character there would fail the request (a 500).
        else if (token.Length > 1024 || token.Any(c => c is < '!' or > '~')) error = "That is not an admin token: it has spaces, line breaks or characters outside printable ASCII.";
        else
        {
            try
            {
                await AdminUnlock.UnlockAsync(http, which, token, ct);
                return Results.Redirect($"/admin/{target}");
            }
            catch (AdminTokenRefusedException)
            {
                error = which == AdminTarget.Secrets ? "The secrets broker refused this token." : "The cache refused this token.";
            }
            catch (HttpRequestException ex)
            {
                return Unreachable(http, antiforgery, which == AdminTarget.Secrets ? "Secrets" : "Cache", ex);
            }
        }
        return LockedPage(http, antiforgery, which, error, StatusCodes.Status400BadRequest);
    }

    /// <summary>Lock: the session forgets the token (sign-out and expiry forget it too).</summary>
    private static async Task<IResult> Lock(string target, HttpContext http, IAntiforgery antiforgery)
    {
        if (await RefusedFormAsync(http, antiforgery) is { } refused) return refused;
        if (!WebUiAuth.IsAdmin(http.User)) return NotAdmin(http, antiforgery);
        await AdminUnlock.LockAsync(http, target == "secrets" ? AdminTarget.Secrets : AdminTarget.Cache);
        return Results.Redirect($"/admin/{target}");
    }

    private static IResult LockedPage(HttpContext http, IAntiforgery antiforgery, AdminTarget target, string? error, int status = StatusCodes.Status200OK)
    {
        var title = target == AdminTarget.Secrets ? "Secrets" : "Cache";
        return Html.Page(title, Pages.Unlock(target, error, Token(http, antiforgery)), Token(http, antiforgery), signedIn: true, status, admin: true);
    }

    // The message names the URL and status only: the token is in a header, never in an exception's text.
    private static IResult Unreachable(HttpContext http, IAntiforgery antiforgery, string title, HttpRequestException ex) =>
        Html.Page(title, Pages.Message(title, $"The admin API could not be reached: {ex.Message}"), Token(http, antiforgery), true, StatusCodes.Status502BadGateway, admin: true);

    /// <summary>An admin page asked by another key: it answers as a page that does not exist.</summary>
    private static IResult NotAdmin(HttpContext http, IAntiforgery antiforgery) =>
        Html.Page("Not found", Pages.Message("Not found", "There is no such page for this key."), Token(http, antiforgery), true, StatusCodes.Status404NotFound);

    /// <summary>The raw log, as the API's log endpoint serves it (the same handler, with the session's key).</summary>
    private static Task<Results<ServerSentEventsResult<string>, ContentHttpResult, ProblemHttpResult>> RawLog(
        Guid id, HttpRequest request, ClaimsPrincipal user, IntakeDbContext db, JobLogFollower follower, JobLogStore store, CancellationToken ct) =>
        JobsApi.GetLogs(id, follow: null, request, user, db, follower, store, ct);

    /// <summary>The signed envelope, as the API's attestation endpoint serves it (to check offline with <c>eci jobs verify --file</c>).</summary>
    private static Task<Results<Ok<DsseEnvelope>, ProblemHttpResult>> Attestation(Guid id, ClaimsPrincipal user, IntakeDbContext db, CancellationToken ct) =>
        JobsApi.GetAttestation(id, user, db, ct);

    /// <summary>The live log as server-sent events of HTML (colours as spans, everything else encoded), one renderer per stream.</summary>
    private static async Task<IResult> LiveLog(Guid id, HttpContext http, IntakeDbContext db, JobLogFollower follower, CancellationToken ct)
    {
        if (!await JobsApi.IsVisibleAsync(id, http.User, db, ct)) return TypedResults.NotFound();
        return TypedResults.ServerSentEvents(AsHtml(follower.FollowAsync(id, JobLogFollower.ResumeOffset(http.Request), ct)));
    }

    private static async IAsyncEnumerable<SseItem<string>> AsHtml(IAsyncEnumerable<SseItem<string>> items, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var ansi = new AnsiHtml();
        await foreach (var item in items.WithCancellation(ct))
        {
            yield return item.EventType == JobLogFollower.LogEvent
                ? new SseItem<string>(ansi.Append(item.Data), item.EventType) { EventId = item.EventId }
                : item;
        }
    }

    private static async Task<IResult> Cancel(Guid id, HttpContext http, IAntiforgery antiforgery, IntakeDbContext db, JobUpdater updater, CancellationToken ct)
    {
        if (await RefusedFormAsync(http, antiforgery) is { } refused) return refused;
        if (!WebUiAuth.MayCancel(http.User))
        {
            return Html.Page("Not allowed", Pages.Message("Not allowed", "This key may not cancel jobs (it needs the submit scope)."),
                Token(http, antiforgery), true, StatusCodes.Status403Forbidden);
        }
        var result = await JobsApi.CancelJob(id, http.User, db, updater, ct);
        if (result.Result is ProblemHttpResult { StatusCode: StatusCodes.Status404NotFound }) return NotFound(http, antiforgery, id);
        // Cancelled, or already over (409): either way the job page says what it is now.
        return Results.Redirect($"/jobs/{id}");
    }

    private static IResult Asset(string file) => WebUiAssets.Find(file) is { } asset
        ? Results.Bytes(asset.Content, asset.ContentType)
        : Results.NotFound();

    /// <summary>Null when the form carries a valid antiforgery token (field and cookie), else the 400 page.</summary>
    private static async Task<IResult?> RefusedFormAsync(HttpContext http, IAntiforgery antiforgery)
    {
        try
        {
            await antiforgery.ValidateRequestAsync(http);
            return null;
        }
        catch (AntiforgeryValidationException)
        {
            return Html.Page("Form refused", Pages.Message("Form refused",
                "The form did not come from this site or has expired. Go back, reload the page and try again."), null,
                signedIn: false, StatusCodes.Status400BadRequest);
        }
    }

    private static IResult NotFound(HttpContext http, IAntiforgery antiforgery, Guid id) =>
        Html.Page("Not found", Pages.Message("Job not found", $"There is no job {id} that this key may see."), Token(http, antiforgery), true, StatusCodes.Status404NotFound);

    private static string? Token(HttpContext http, IAntiforgery antiforgery) => antiforgery.GetAndStoreTokens(http).RequestToken;

    private static bool IsLocal(string url) =>
        url.StartsWith('/') && !url.StartsWith("//", StringComparison.Ordinal) && !url.StartsWith("/\\", StringComparison.Ordinal);
}
