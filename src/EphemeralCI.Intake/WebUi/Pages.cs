using System.Text;
using System.Text.Json;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Model;
using static EphemeralCI.Intake.WebUi.Html;

namespace EphemeralCI.Intake.WebUi;

/// <summary>The filters of the jobs page, its rows (one more than a page, to know if there is a next) and the cursor they came after.</summary>
internal sealed record JobsView(string? Repository, string? Status, IReadOnlyList<Job> Jobs, string? NextCursor, bool IsFirstPage, DateTimeOffset Now);

/// <summary>One step of the current attempt, from its step.started / step.finished entries (or the spec, if it never ran).</summary>
internal sealed record StepView(int Index, string Name, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, int? ExitCode);

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
        var html = new StringBuilder("<h1>Jobs</h1>");
        html.Append("<form method=\"get\" action=\"/\" class=\"filters\">")
            .Append("<div><label for=\"repository\">Repository</label><input id=\"repository\" name=\"repository\" placeholder=\"owner/name\" value=\"")
            .Append(E(view.Repository)).Append("\"></div>")
            .Append("<div><label for=\"status\">Status</label><select id=\"status\" name=\"status\"><option value=\"\">any</option>");
        foreach (var name in JobStatusNames.All)
        {
            html.Append("<option value=\"").Append(E(name)).Append('"').Append(name == view.Status ? " selected" : "").Append('>')
                .Append(E(name.Replace('_', ' '))).Append("</option>");
        }
        html.Append("</select></div><button type=\"submit\">Filter</button></form>");

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
        var filters = Query(("repository", view.Repository), ("status", view.Status));
        if (!view.IsFirstPage) html.Append("<a href=\"/").Append(E(filters.Length > 0 ? "?" + filters : "")).Append("\">Newest</a>");
        if (view.NextCursor is not null)
        {
            html.Append("<a rel=\"next\" href=\"/?").Append(E(Query(("repository", view.Repository), ("status", view.Status), ("before", view.NextCursor))))
                .Append("\">Older</a>");
        }
        html.Append("</nav>");
        return html.ToString();
    }

    public static string Job(Job job, IReadOnlyList<JobEvent> events, IReadOnlyList<StepView> steps, string? log, bool mayCancel,
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
        foreach (var step in steps)
        {
            var state = step.ExitCode is { } code ? (code == 0 ? "passed" : "failed") : step.StartedAt is not null ? "running" : "pending";
            html.Append("<li class=\"step ").Append(state).Append("\" data-step=\"").Append(step.Index).Append("\">")
                .Append("<span class=\"step-name\">").Append(E(step.Name)).Append("</span> <span class=\"step-state\">")
                .Append(step.ExitCode is { } c ? $"exit code {c}" : state).Append("</span>");
            if (step.StartedAt is { } started) html.Append(" <span class=\"step-time\">").Append(Duration((step.FinishedAt ?? now) - started)).Append("</span>");
            html.Append("</li>");
        }
        html.Append("</ol></section>");

        html.Append("<section><h2>Log</h2><p class=\"log-links\"><a href=\"/jobs/").Append(job.Id).Append("/log\" download=\"job-")
            .Append(job.Id).Append(".log\">Download raw log</a></p>");
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

    private static void Fact(StringBuilder html, string name, string valueHtml) =>
        html.Append("<div><dt>").Append(E(name)).Append("</dt><dd>").Append(valueHtml).Append("</dd></div>");

    private static string Badge(JobStatus status)
    {
        var name = JobStatusNames.ToName(status);
        return $"<span class=\"badge status-{name}\">{E(name.Replace('_', ' '))}</span>";
    }

    private static string Title(Job job) => string.IsNullOrWhiteSpace(job.Name) ? $"Job {job.Id.ToString()[..8]}" : job.Name;

    private static string Short(string value, int length) => value.Length <= length ? value : value[..length];

    /// <summary>From submission until a runner ran it (or until it ended without one, or now).</summary>
    private static TimeSpan? QueueWait(Job job, DateTimeOffset now) => (job.StartedAt ?? job.FinishedAt ?? now) - job.CreatedAt;

    /// <summary>From the first step until the end (or now); none if it never ran.</summary>
    private static TimeSpan? RunTime(Job job, DateTimeOffset now) => job.StartedAt is { } started ? (job.FinishedAt ?? now) - started : null;

    private static string Query(params (string Name, string? Value)[] parameters) =>
        string.Join('&', parameters.Where(p => !string.IsNullOrEmpty(p.Value)).Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value!)}"));
}
