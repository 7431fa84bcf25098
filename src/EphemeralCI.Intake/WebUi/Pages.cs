using System.Text;
using System.Text.Json;
using EphemeralCI.Attestations;
using EphemeralCI.Contracts.Admin;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Model;
using static EphemeralCI.Intake.WebUi.Html;

namespace EphemeralCI.Intake.WebUi;

/// <summary>The filters of the jobs page, its rows (one more than a page, to know if there is a next) and the cursor they came after.</summary>
internal sealed record JobsView(JobsFilters Filters, IReadOnlyList<Job> Jobs, string? NextCursor, DateTimeOffset Now)
{
    public bool IsFirstPage => Filters.Cursor is null;
}

/// <summary>One step of the current attempt, from its step.started / step.finished entries (or the spec, if it never ran).</summary>
internal sealed record StepView(int Index, string Name, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, int? ExitCode);

/// <summary>A cache restore or save of the current attempt, as the agent reported it (<c>cache.restore</c> / <c>cache.save</c>).</summary>
internal sealed record CacheView(string Operation, string Key, string Result, string? MatchedKey, long Bytes, long? DurationMs, string? Error);

/// <summary>What the job page shows beyond the job row: steps, caches, and the attestation's verdict (null until signed).</summary>
internal sealed record JobDetails(IReadOnlyList<StepView> Steps, IReadOnlyList<CacheView> Caches, AttestationVerification? Attestation)
{
    public static IReadOnlyList<CacheView> CachesOf(Job job, IReadOnlyList<JobEvent> events) =>
        events.Where(e => e.Type is JobEventTypes.CacheRestore or JobEventTypes.CacheSave && e.Data is not null)
            .Select(e => (e.Type, Data: JsonSerializer.Deserialize<CacheData>(e.Data!, JsonSerializerOptions.Web)))
            .Where(c => c.Data is not null && (c.Data.Attempt ?? 1) == job.Attempt)
            .Select(c => new CacheView(c.Type == JobEventTypes.CacheRestore ? "restore" : "save", c.Data!.Key ?? "", c.Data.Result ?? "",
                c.Data.MatchedKey, c.Data.Bytes, c.Data.DurationMs, c.Data.Error))
            .ToList();

    private sealed record CacheData(string? Key, string? Result, string? MatchedKey, long Bytes, long? DurationMs, string? Error, int? Attempt);
}

/// <summary>The secrets page's data: the broker's secrets (no values) and its newest audit lines; null where the broker runs apart.</summary>
internal sealed record SecretsView(IReadOnlyList<SecretSummary> Secrets, IReadOnlyList<SecretAuditLine> Audit)
{
    public const int AuditLines = 200;
}

/// <summary>The cache page's data; null where the cache runs apart.</summary>
internal sealed record CacheAdminPage(long QuotaBytes, IReadOnlyList<CacheScopeUsage> Usage, IReadOnlyList<CacheEntrySummary> Entries, string? Repository)
{
    public const int MaxEntries = 200;
}

/// <summary>The HTML of each page; the data is loaded by <see cref="WebUiEndpoints"/>. Every value goes through <see cref="Html.E"/>.</summary>
internal static class Pages
{
    public static string SignIn(string? returnUrl, string? error, string? antiforgeryToken)
    {
        var html = new StringBuilder("<section class=\"signin\"><h1>Sign in</h1>");
        html.Append("<p>Paste an EphemeralCI API key (<code>eci_…</code>) with the <code>read</code> scope. ")
            .Append("It is checked once and not kept: the browser gets a session cookie saying what the key may see.</p>");
        if (error is not null) html.Append("<p class=\"error\" role=\"alert\">").Append(E(error)).Append("</p>");
        html.Append("<form method=\"post\" action=\"/signin\">").Append(AntiforgeryField(antiforgeryToken))
            .Append("<input type=\"hidden\" name=\"returnUrl\" value=\"").Append(E(returnUrl)).Append("\">")
            .Append("<label for=\"key\">API key</label>")
            .Append("<input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"off\" spellcheck=\"false\" required>")
            .Append("<button type=\"submit\">Sign in</button></form></section>");
        return html.ToString();
    }

    public static string Jobs(JobsView view)
    {
        var f = view.Filters;
        var html = new StringBuilder("<h1>Jobs</h1>");
        html.Append("<form method=\"get\" action=\"/\" class=\"filters\">");
        FilterInput(html, "repository", "Repository", f.Repository, "owner/name");
        FilterInput(html, "ref", "Ref", f.Ref, "refs/heads/…");
        FilterInput(html, "template", "Template", f.Template, "any");
        html.Append("<div><label for=\"status\">Status</label><select id=\"status\" name=\"status\"><option value=\"\">any</option>");
        foreach (var name in JobStatusNames.All)
        {
            html.Append("<option value=\"").Append(E(name)).Append('"').Append(name == f.Status ? " selected" : "").Append('>')
                .Append(E(name.Replace('_', ' '))).Append("</option>");
        }
        html.Append("</select></div>");
        // Free text rather than datetime-local: a date alone is the common case, and the page's times are UTC, not the browser's zone.
        FilterInput(html, "from", "Queued from (UTC)", f.From, "yyyy-mm-dd[Thh:mm]");
        FilterInput(html, "to", "Queued before (UTC)", f.To, "yyyy-mm-dd[Thh:mm]");
        html.Append("<button type=\"submit\">Filter</button>");
        if (f.Parameters.Any(p => p.Value is not null)) html.Append("<a href=\"/\">Clear</a>");
        html.Append("</form>");

        if (view.Jobs.Count == 0)
        {
            html.Append("<p class=\"empty\">No jobs").Append(view.IsFirstPage ? "" : " on this page").Append(".</p>");
        }
        else
        {
            html.Append("<table class=\"jobs\"><thead><tr><th>Status</th><th>Job</th><th>Repository</th><th>Ref</th><th>Commit</th>")
                .Append("<th>Template</th><th>Queued at</th><th>Queue wait</th><th>Duration</th></tr></thead><tbody>");
            foreach (var job in view.Jobs)
            {
                html.Append("<tr data-job=\"").Append(job.Id).Append("\">")
                    .Append("<td data-label=\"Status\">").Append(Badge(job.Status)).Append("</td>")
                    .Append("<td data-label=\"Job\"><a href=\"/jobs/").Append(job.Id).Append("\">").Append(E(Title(job))).Append("</a></td>")
                    .Append("<td data-label=\"Repository\">").Append(E(job.Repository)).Append("</td>")
                    .Append("<td data-label=\"Ref\">").Append(E(job.Ref)).Append("</td>")
                    .Append("<td data-label=\"Commit\"><code title=\"").Append(E(job.CommitSha)).Append("\">").Append(E(Short(job.CommitSha, 7))).Append("</code></td>")
                    .Append("<td data-label=\"Template\">").Append(E(job.RunnerTemplate)).Append("</td>")
                    .Append("<td data-label=\"Queued at\">").Append(Time(job.CreatedAt)).Append("</td>")
                    .Append("<td data-label=\"Queue wait\">").Append(Duration(QueueWait(job, view.Now))).Append("</td>")
                    .Append("<td data-label=\"Duration\">").Append(Duration(RunTime(job, view.Now))).Append("</td></tr>");
            }
            html.Append("</tbody></table>");
        }

        html.Append("<nav class=\"pager\" aria-label=\"Pages\">");
        var filters = Query([.. f.Parameters]);
        if (!view.IsFirstPage) html.Append("<a href=\"/").Append(E(filters.Length > 0 ? "?" + filters : "")).Append("\">Newest</a>");
        if (view.NextCursor is not null)
        {
            html.Append("<a rel=\"next\" href=\"/?").Append(E(Query([.. f.Parameters, ("before", view.NextCursor)]))).Append("\">Older</a>");
        }
        html.Append("</nav>");
        return html.ToString();
    }

    public static string Job(Job job, IReadOnlyList<JobEvent> events, JobDetails details, string? log, bool mayCancel,
        string? antiforgeryToken, DateTimeOffset now)
    {
        var html = new StringBuilder();
        html.Append("<div class=\"job-head\"><h1>").Append(E(Title(job))).Append("</h1>").Append(Badge(job.Status));
        if (mayCancel && !job.Status.IsTerminal())
        {
            html.Append("<form method=\"post\" action=\"/jobs/").Append(job.Id).Append("/cancel\" class=\"cancel\">")
                .Append(AntiforgeryField(antiforgeryToken)).Append("<button type=\"submit\" class=\"danger\">Cancel job</button></form>");
        }
        html.Append("</div><dl class=\"facts\">");
        Fact(html, "Repository", E(job.Repository));
        Fact(html, "Ref", E(job.Ref));
        Fact(html, "Commit", $"<code title=\"{E(job.CommitSha)}\">{E(Short(job.CommitSha, 12))}</code>");
        Fact(html, "Template", E(job.RunnerTemplate) + (job.RunnerTemplateHash is { } hash ? $" <code title=\"{E(hash)}\">{E(Short(hash, 19))}</code>" : ""));
        Fact(html, "Submitted by", E(job.SubmittedBy ?? "unknown"));
        Fact(html, "Attempt", job.Attempt.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (job.Environment is { } environment) Fact(html, "Environment", E(environment));
        Fact(html, "Queued at", Time(job.CreatedAt));
        Fact(html, "Queue wait", Duration(QueueWait(job, now)));
        Fact(html, "Duration", Duration(RunTime(job, now)));
        if (job.ExitCode is { } exit) Fact(html, "Exit code", exit.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (job.StatusReason is { } reason) Fact(html, "Reason", E(reason));
        html.Append("</dl>");

        html.Append("<section><h2>Steps</h2><ol class=\"steps\">");
        foreach (var step in details.Steps)
        {
            var state = step.ExitCode is { } code ? (code == 0 ? "passed" : "failed") : step.StartedAt is not null ? "running" : "pending";
            // #step-N is the agent's header line of that step in the log (AnsiHtml), there once the step started.
            html.Append("<li class=\"step ").Append(state).Append("\" data-step=\"").Append(step.Index).Append("\">")
                .Append(step.StartedAt is null ? "<span class=\"step-name\">" : $"<a class=\"step-name\" href=\"#step-{step.Index + 1}\">")
                .Append(E(step.Name)).Append(step.StartedAt is null ? "</span>" : "</a>").Append(" <span class=\"step-state\">")
                .Append(step.ExitCode is { } c ? $"exit code {c}" : state).Append("</span>");
            if (step.StartedAt is { } started) html.Append(" <span class=\"step-time\">").Append(Duration((step.FinishedAt ?? now) - started)).Append("</span>");
            html.Append("</li>");
        }
        html.Append("</ol></section>");

        html.Append("<section><h2>Log</h2><div class=\"log-tools\"><a href=\"/jobs/").Append(job.Id).Append("/log\" download=\"job-")
            .Append(job.Id).Append(".log\">Download raw log</a>")
            // Find in page: /ui/job.js marks the matches; without the script the box does nothing harmful (a GET of this page).
            .Append("<form class=\"find\" role=\"search\" action=\"#\"><label for=\"find\">Find in log</label>")
            .Append("<input id=\"find\" type=\"search\" autocomplete=\"off\" spellcheck=\"false\">")
            .Append("<span id=\"find-count\" class=\"find-count\" aria-live=\"polite\"></span></form></div>");
        if (job.Status.IsTerminal())
        {
            html.Append("<pre id=\"log\" class=\"log\">").Append(log).Append("</pre>");
        }
        else
        {
            // Filled by /ui/job.js from the live stream (stored lines first, then each one as it arrives).
            html.Append("<p id=\"log-state\" class=\"log-state\" aria-live=\"polite\">Following the log…</p>")
                .Append("<pre id=\"log\" class=\"log\" data-live=\"/jobs/").Append(job.Id).Append("/log/live\"></pre>");
        }
        html.Append("</section>");

        Caches(html, details.Caches);
        Attestation(html, job, details.Attestation);

        html.Append("<section><h2>Timeline</h2><table class=\"timeline\"><thead><tr><th>At</th><th>Since previous</th><th>Event</th><th>Detail</th></tr></thead><tbody>");
        DateTimeOffset? previous = null;
        foreach (var e in events)
        {
            html.Append("<tr><td data-label=\"At\">").Append(Time(e.At)).Append("</td><td data-label=\"Since previous\">")
                .Append(previous is { } p ? "+" + Duration(e.At - p) : "").Append("</td><td data-label=\"Event\"><code>").Append(E(e.Type))
                .Append("</code></td><td data-label=\"Detail\">").Append(E(e.Message)).Append("</td></tr>");
            previous = e.At;
        }
        html.Append("</tbody></table></section>");
        return html.ToString();
    }

    private static void Caches(StringBuilder html, IReadOnlyList<CacheView> caches)
    {
        html.Append("<section><h2>Caches</h2>");
        if (caches.Count == 0)
        {
            html.Append("<p class=\"empty\">No cache restored or saved (yet).</p></section>");
            return;
        }
        html.Append("<table class=\"caches\"><thead><tr><th>Operation</th><th>Key</th><th>Result</th><th>Size</th><th>Time</th></tr></thead><tbody>");
        foreach (var c in caches)
        {
            var hit = c.Result is "hit" or "saved" ? "ok" : c.Result == "miss" || c.Result.StartsWith("skipped", StringComparison.Ordinal) ? "idle" : "bad";
            html.Append("<tr data-cache=\"").Append(E(c.Operation)).Append("\"><td data-label=\"Operation\">").Append(E(c.Operation))
                .Append("</td><td data-label=\"Key\"><code>").Append(E(c.Key)).Append("</code>");
            if (c.MatchedKey is { } matched && matched != c.Key) html.Append(" <span class=\"muted\">matched <code>").Append(E(matched)).Append("</code></span>");
            html.Append("</td><td data-label=\"Result\"><span class=\"result-").Append(hit).Append("\">").Append(E(c.Result)).Append("</span>");
            if (c.Error is { } error) html.Append(" <span class=\"muted\">").Append(E(error)).Append("</span>");
            html.Append("</td><td data-label=\"Size\">").Append(Bytes(c.Bytes)).Append("</td><td data-label=\"Time\">")
                .Append(c.DurationMs is { } ms ? Duration(TimeSpan.FromMilliseconds(ms)) : "—").Append("</td></tr>");
        }
        html.Append("</tbody></table></section>");
    }

    /// <summary>The attestation: verified or not (and why), what it says the job received (secret names, never values), and the envelope to download.</summary>
    private static void Attestation(StringBuilder html, Job job, AttestationVerification? verdict)
    {
        html.Append("<section><h2>Attestation</h2>");
        if (verdict is null)
        {
            html.Append("<p class=\"empty\">").Append(job.Status.IsTerminal()
                ? "Not signed yet: the job is attested once its runner is destroyed and checked."
                : "Signed once the job is over and its runner destroyed and checked.").Append("</p>");
            html.Append("<h3>Secrets received</h3><p class=\"empty\">Listed from the attestation once it is signed (the broker names what it issued).</p></section>");
            return;
        }
        html.Append(verdict.Valid
            ? $"<p class=\"verified\"><span class=\"badge status-succeeded\">✓ verified</span> signed by key <code>{E(verdict.KeyId)}</code>; the runner's teardown check passed.</p>"
            : "<p class=\"unverified\"><span class=\"badge status-failed\">✗ not verified</span></p><ul class=\"problems\">"
                + string.Concat(verdict.Problems.Select(p => $"<li>{E(p)}</li>")) + "</ul>");
        html.Append("<p><a href=\"/jobs/").Append(job.Id).Append("/attestation\" download=\"job-").Append(job.Id)
            .Append(".intoto.json\">Download the signed envelope</a> (check it yourself with <code>eci jobs verify --file</code>)</p>");

        html.Append("<h3>Secrets received</h3>");
        var secrets = verdict.Statement?.Predicate?.Secrets;
        if (secrets is not { Count: > 0 })
        {
            html.Append("<p class=\"empty\">None.</p>");
        }
        else
        {
            html.Append("<table class=\"secrets\"><thead><tr><th>Name</th><th>Version</th><th>Issued at</th><th>Revoked at</th></tr></thead><tbody>");
            foreach (var secret in secrets)
            {
                html.Append("<tr><td data-label=\"Name\"><code>").Append(E(secret.Name)).Append("</code></td><td data-label=\"Version\">")
                    .Append(secret.Version?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "—").Append("</td><td data-label=\"Issued at\">")
                    .Append(Time(secret.IssuedAt)).Append("</td><td data-label=\"Revoked at\">").Append(secret.RevokedAt is { } r ? Time(r) : "—").Append("</td></tr>");
            }
            html.Append("</tbody></table>");
        }
        html.Append("</section>");
    }

    public static string Runners(RunnersView view)
    {
        var html = new StringBuilder("<h1>Runners</h1>");
        html.Append("<p class=\"muted\">Jobs not over that this key may see, as the provisioner reported them; each runner serves one job and is destroyed after it.</p>");
        if (view.Truncated) html.Append("<p class=\"error\">More than ").Append(RunnersView.MaxJobs).Append(" jobs are not over: the oldest are shown.</p>");

        html.Append("<section><h2>Running now</h2>");
        if (view.Running.Count == 0) html.Append("<p class=\"empty\">No runner.</p>");
        foreach (var group in view.Running)
        {
            html.Append("<h3 class=\"runner-group\" data-backend=\"").Append(E(group.Key.Backend)).Append("\" data-template=\"").Append(E(group.Key.Template)).Append("\">")
                .Append("Backend <code>").Append(E(group.Key.Backend)).Append("</code>, template <code>").Append(E(group.Key.Template)).Append("</code>: ")
                .Append(group.Count()).Append(group.Count() == 1 ? " runner" : " runners").Append("</h3>");
            ActiveTable(html, group, view.Now, waiting: false);
        }
        html.Append("</section><section><h2>Waiting</h2>");
        if (view.Waiting.Count == 0) html.Append("<p class=\"empty\">No job waits for a runner.</p>");
        else ActiveTable(html, view.Waiting, view.Now, waiting: true);
        html.Append("</section><section class=\"warm-pools\"><h2>Warm pool</h2>");
        if (view.WarmPools.Count == 0)
        {
            html.Append("<p class=\"empty\">No template keeps a warm pool that a provisioner reported lately (<code>warmPool: N</code> in a local template ")
                .Append("starts N sandboxes ahead of demand; each provisioner reports its pools every 15 s by default).</p>");
        }
        else
        {
            html.Append("<p class=\"muted\">Sandboxes started ahead of demand, each for one job, destroyed after it like any runner; they hold no job, token or workspace until taken. ")
                .Append("Summed over the provisioners that reported lately; one that misses three reports no longer counts.</p>")
                .Append("<table class=\"warm\"><thead><tr><th>Template</th><th>Backend</th><th>Ready</th><th>Pool size</th><th>Provisioners</th><th>As of</th></tr></thead><tbody>");
            foreach (var pool in view.WarmPools)
            {
                html.Append("<tr data-template=\"").Append(E(pool.Template)).Append("\"><td data-label=\"Template\">").Append(E(pool.Template))
                    .Append("</td><td data-label=\"Backend\">").Append(E(pool.Backend)).Append("</td><td data-label=\"Ready\">").Append(pool.Ready)
                    .Append("</td><td data-label=\"Pool size\">").Append(pool.Target).Append("</td><td data-label=\"Provisioners\">").Append(pool.Instances)
                    .Append("</td><td data-label=\"As of\">").Append(Time(pool.AsOf)).Append("</td></tr>");
            }
            html.Append("</tbody></table>");
        }
        html.Append("</section>");
        return html.ToString();
    }

    private static void ActiveTable(StringBuilder html, IEnumerable<ActiveJob> jobs, DateTimeOffset now, bool waiting)
    {
        html.Append("<table class=\"runners\"><thead><tr><th>Status</th><th>Job</th><th>Repository</th><th>Template</th><th>")
            .Append(waiting ? "Why it waits" : "Running for").Append("</th><th>Queued for</th></tr></thead><tbody>");
        foreach (var a in jobs)
        {
            var job = a.Job;
            html.Append("<tr data-job=\"").Append(job.Id).Append("\"><td data-label=\"Status\">").Append(Badge(job.Status)).Append("</td>")
                .Append("<td data-label=\"Job\"><a href=\"/jobs/").Append(job.Id).Append("\">").Append(E(Title(job))).Append("</a></td>")
                .Append("<td data-label=\"Repository\">").Append(E(job.Repository)).Append("</td>")
                .Append("<td data-label=\"Template\">").Append(E(job.RunnerTemplate)).Append("</td>");
            if (waiting) html.Append("<td data-label=\"Why it waits\" class=\"reason\">").Append(E(a.WaitingReason)).Append("</td>");
            else html.Append("<td data-label=\"Running for\">").Append(Duration(RunTime(job, now))).Append("</td>");
            html.Append("<td data-label=\"Queued for\">").Append(Duration(QueueWait(job, now))).Append("</td></tr>");
        }
        html.Append("</tbody></table>");
    }

    public static string Secrets(SecretsView? view)
    {
        var html = new StringBuilder("<h1>Secrets</h1>");
        if (view is null)
        {
            html.Append("<p class=\"empty\">The secrets broker runs apart from this intake: use its admin API (<code>/api/v1/admin/secrets</code>, <code>/api/v1/admin/audit</code>).</p>");
            return html.ToString();
        }
        html.Append("<p class=\"muted\">Names, versions and who may receive them; values never leave the broker.</p><section><h2>Secrets</h2>");
        if (view.Secrets.Count == 0) html.Append("<p class=\"empty\">No secret.</p>");
        else
        {
            html.Append("<table class=\"secrets\"><thead><tr><th>Name</th><th>Version</th><th>Repositories</th><th>Refs</th><th>Environment</th><th>Updated</th></tr></thead><tbody>");
            foreach (var s in view.Secrets)
            {
                html.Append("<tr data-secret=\"").Append(E(s.Name)).Append("\"><td data-label=\"Name\"><code>").Append(E(s.Name)).Append("</code></td>")
                    .Append("<td data-label=\"Version\">").Append(s.CurrentVersion).Append("</td>")
                    .Append("<td data-label=\"Repositories\">").Append(E(string.Join(", ", s.Repositories))).Append("</td>")
                    .Append("<td data-label=\"Refs\">").Append(E(string.Join(", ", s.Refs))).Append("</td>")
                    .Append("<td data-label=\"Environment\">").Append(E(s.Environment ?? "any")).Append("</td>")
                    .Append("<td data-label=\"Updated\">").Append(Time(s.UpdatedAt)).Append(" by ").Append(E(s.UpdatedBy)).Append("</td></tr>");
            }
            html.Append("</tbody></table>");
        }
        html.Append("</section><section><h2>Audit trail</h2><p class=\"muted\">The newest ").Append(SecretsView.AuditLines)
            .Append(" lines, newest first.</p><table class=\"audit\"><thead><tr><th>At</th><th>Action</th><th>Secret</th><th>Job</th><th>Identity</th><th>Actor</th><th>Detail</th></tr></thead><tbody>");
        foreach (var line in view.Audit)
        {
            var refused = line.Action.EndsWith(".denied", StringComparison.Ordinal) || line.Action.EndsWith(".replayed", StringComparison.Ordinal);
            html.Append("<tr data-action=\"").Append(E(line.Action)).Append('"').Append(refused ? " class=\"refused\"" : "").Append("><td data-label=\"At\">").Append(Time(line.At)).Append("</td>")
                .Append("<td data-label=\"Action\"><code>").Append(E(line.Action)).Append("</code></td>")
                .Append("<td data-label=\"Secret\">").Append(line.Secret is { } secret ? $"<code>{E(secret)}</code>" : "—").Append("</td>")
                .Append("<td data-label=\"Job\">").Append(line.JobId is { } job ? $"<a href=\"/jobs/{job}\">{job.ToString()[..8]}</a>" : "—").Append("</td>")
                .Append("<td data-label=\"Identity\">").Append(E(line.Repository is null ? "—" : $"{line.Repository}@{line.Ref}")).Append("</td>")
                .Append("<td data-label=\"Actor\">").Append(E(line.Actor)).Append("</td>")
                .Append("<td data-label=\"Detail\">").Append(E(line.Detail)).Append("</td></tr>");
        }
        html.Append("</tbody></table></section>");
        return html.ToString();
    }

    /// <summary>The form that asks for the broker's or the cache's admin token (kept in the session only).</summary>
    public static string Unlock(AdminTarget target, string? error, string? antiforgeryToken)
    {
        var (title, path, who) = target == AdminTarget.Secrets ? ("Secrets", "secrets", "secrets broker") : ("Cache", "cache", "cache");
        var html = new StringBuilder("<h1>").Append(title).Append("</h1><section class=\"unlock\">")
            .Append("<p>The ").Append(who).Append(" runs apart from this intake, which holds none of its admin tokens. Paste the ")
            .Append(who).Append("'s admin token to read it here: it is checked once, then kept only in your encrypted session and forgotten when you sign out or lock.</p>");
        if (error is not null) html.Append("<p class=\"error\" role=\"alert\">").Append(E(error)).Append("</p>");
        html.Append("<form method=\"post\" action=\"/admin/").Append(path).Append("/unlock\">").Append(AntiforgeryField(antiforgeryToken))
            .Append("<label for=\"token\">Admin token</label>")
            .Append("<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" spellcheck=\"false\" required>")
            .Append("<button type=\"submit\">Unlock</button></form></section>");
        return html.ToString();
    }

    /// <summary>Forget the pasted admin token before the session ends.</summary>
    public static string LockForm(string path, string? antiforgeryToken) =>
        new StringBuilder("<form method=\"post\" action=\"/admin/").Append(path).Append("/lock\" class=\"lock\">").Append(AntiforgeryField(antiforgeryToken))
            .Append("<button type=\"submit\">Lock (forget the admin token)</button></form>").ToString();

    public static string Cache(CacheAdminPage? view, string? antiforgeryToken)
    {
        var html = new StringBuilder("<h1>Cache</h1>");
        if (view is null)
        {
            html.Append("<p class=\"empty\">The cache runs apart from this intake: use its admin API (<code>/cache/admin</code>).</p>");
            return html.ToString();
        }
        html.Append("<section><h2>Usage</h2><p class=\"muted\">Per repository and scope (the ref that wrote it); the quota is per repository: ")
            .Append(Bytes(view.QuotaBytes)).Append(".</p>");
        if (view.Usage.Count == 0) html.Append("<p class=\"empty\">The cache is empty.</p>");
        else
        {
            html.Append("<table class=\"usage\"><thead><tr><th>Repository</th><th>Scope</th><th>Entries</th><th>Size</th></tr></thead><tbody>");
            foreach (var u in view.Usage)
            {
                html.Append("<tr><td data-label=\"Repository\"><a href=\"/admin/cache?repository=").Append(E(Uri.EscapeDataString(u.Repository))).Append("\">").Append(E(u.Repository))
                    .Append("</a></td><td data-label=\"Scope\">").Append(E(u.Scope)).Append("</td><td data-label=\"Entries\">").Append(u.Entries)
                    .Append("</td><td data-label=\"Size\">").Append(Bytes(u.Bytes)).Append("</td></tr>");
            }
            html.Append("</tbody></table>");
        }
        html.Append("</section><section><h2>Entries").Append(view.Repository is null ? "" : " of " + E(view.Repository)).Append("</h2>");
        if (view.Repository is not null) html.Append("<p><a href=\"/admin/cache\">All repositories</a></p>");
        if (view.Entries.Count == 0) html.Append("<p class=\"empty\">No entry.</p>");
        else
        {
            html.Append("<p class=\"muted\">The newest ").Append(CacheAdminPage.MaxEntries).Append(". Deleting an entry removes its object; the next job of that scope misses and saves it again.</p>")
                .Append("<table class=\"entries\"><thead><tr><th>Key</th><th>Repository</th><th>Scope</th><th>State</th><th>Size</th><th>Created</th><th>Last used</th><th></th></tr></thead><tbody>");
            foreach (var e in view.Entries)
            {
                html.Append("<tr data-entry=\"").Append(e.Id).Append("\"><td data-label=\"Key\"><code>").Append(E(e.Key)).Append("</code></td>")
                    .Append("<td data-label=\"Repository\">").Append(E(e.Repository)).Append("</td><td data-label=\"Scope\">").Append(E(e.Scope)).Append("</td>")
                    .Append("<td data-label=\"State\">").Append(E(e.State)).Append("</td><td data-label=\"Size\">").Append(Bytes(e.SizeBytes)).Append("</td>")
                    .Append("<td data-label=\"Created\">").Append(Time(e.CreatedAt)).Append("</td><td data-label=\"Last used\">").Append(Time(e.LastAccessedAt)).Append("</td>")
                    .Append("<td><form method=\"post\" action=\"/admin/cache/entries/").Append(e.Id).Append("/delete\">").Append(AntiforgeryField(antiforgeryToken))
                    .Append("<button type=\"submit\" class=\"danger\" aria-label=\"Delete ").Append(E(e.Key)).Append("\">Delete</button></form></td></tr>");
            }
            html.Append("</tbody></table>");
        }
        html.Append("</section>");
        return html.ToString();
    }

    public static string Message(string title, string text) => $"<h1>{E(title)}</h1><p>{E(text)}</p><p><a href=\"/\">Back to the jobs</a></p>";

    /// <summary>The current attempt's steps: every step of the spec, with what its step entries say.</summary>
    public static IReadOnlyList<StepView> StepsOf(Job job, IReadOnlyList<JobEvent> events)
    {
        var spec = JsonSerializer.Deserialize<JobSpec>(job.Spec, JsonSerializerOptions.Web);
        var steps = (spec?.Steps ?? []).Select((s, i) => new StepView(i, string.IsNullOrEmpty(s.Name) ? $"step {i + 1}" : s.Name, null, null, null)).ToList();
        foreach (var e in events.Where(e => e.Type is JobEventTypes.StepStarted or JobEventTypes.StepFinished && e.Data is not null))
        {
            using var data = JsonDocument.Parse(e.Data!);
            var root = data.RootElement;
            var attempt = root.TryGetProperty("attempt", out var a) && a.ValueKind == JsonValueKind.Number ? a.GetInt32() : 1;
            if (attempt != job.Attempt || !root.TryGetProperty("stepIndex", out var index) || index.ValueKind != JsonValueKind.Number) continue;
            var i = index.GetInt32();
            if (i < 0 || i >= steps.Count) continue;
            steps[i] = e.Type == JobEventTypes.StepStarted
                ? steps[i] with { StartedAt = e.At }
                : steps[i] with { FinishedAt = e.At, ExitCode = root.TryGetProperty("exitCode", out var code) && code.ValueKind == JsonValueKind.Number ? code.GetInt32() : null };
        }
        return steps;
    }

    private static void FilterInput(StringBuilder html, string name, string label, string? value, string placeholder) =>
        html.Append("<div><label for=\"").Append(name).Append("\">").Append(E(label)).Append("</label><input id=\"").Append(name)
            .Append("\" name=\"").Append(name).Append("\" placeholder=\"").Append(E(placeholder)).Append("\" value=\"").Append(E(value)).Append("\"></div>");

    private static void Fact(StringBuilder html, string name, string valueHtml) =>
        html.Append("<div><dt>").Append(E(name)).Append("</dt><dd>").Append(valueHtml).Append("</dd></div>");

    private static string Badge(JobStatus status)
    {
        var name = JobStatusNames.ToName(status);
        return $"<span class=\"badge status-{name}\">{E(name.Replace('_', ' '))}</span>";
    }

    private static string Bytes(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => (bytes / 1024d).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + " KiB",
        < 1024L * 1024 * 1024 => (bytes / 1024d / 1024).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + " MiB",
        _ => (bytes / 1024d / 1024 / 1024).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + " GiB",
    };

    private static string Title(Job job) => string.IsNullOrWhiteSpace(job.Name) ? $"Job {job.Id.ToString()[..8]}" : job.Name;

    private static string Short(string value, int length) => value.Length <= length ? value : value[..length];

    /// <summary>From submission until a runner ran it (or until it ended without one, or now).</summary>
    private static TimeSpan? QueueWait(Job job, DateTimeOffset now) => (job.StartedAt ?? job.FinishedAt ?? now) - job.CreatedAt;

    /// <summary>From the first step until the end (or now); none if it never ran.</summary>
    private static TimeSpan? RunTime(Job job, DateTimeOffset now) => job.StartedAt is { } started ? (job.FinishedAt ?? now) - started : null;

    private static string Query(params (string Name, string? Value)[] parameters) =>
        string.Join('&', parameters.Where(p => !string.IsNullOrEmpty(p.Value)).Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value!)}"));
}
