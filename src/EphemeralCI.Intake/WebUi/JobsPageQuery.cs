using System.Globalization;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Model;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Intake.WebUi;

/// <summary>
/// The jobs page's query string as typed (or linked): repository, ref, template, status, a time range
/// (<c>from</c> inclusive, <c>to</c> exclusive; a bare date in <c>to</c> takes that whole day; times without
/// an offset are UTC, as the page shows them) and the keyset cursor <c>before</c>.
/// </summary>
public sealed record JobsPageQuery(
    string? Repository,
    [property: FromQuery(Name = "ref")] string? Ref,
    string? Template,
    string? Status,
    string? From,
    string? To,
    string? Before)
{
    private static readonly string[] TimeFormats = ["yyyy-MM-dd", "yyyy-MM-ddTHH:mm", "yyyy-MM-ddTHH:mm:ss", "yyyy-MM-dd HH:mm", "yyyy-MM-dd HH:mm:ss"];

    /// <summary>Null when every filter parses, else a sentence naming the field that does not.</summary>
    public string? Validate()
    {
        if (!string.IsNullOrEmpty(Status) && !JobStatusNames.TryParse(Status, out _)) return $"status: '{Status}' is not a job status.";
        if (!string.IsNullOrWhiteSpace(From) && ParseTime(From, endOfDay: false) is null) return $"from: '{From}' is not a date or time (yyyy-MM-dd or yyyy-MM-ddTHH:mm, UTC).";
        if (!string.IsNullOrWhiteSpace(To) && ParseTime(To, endOfDay: true) is null) return $"to: '{To}' is not a date or time (yyyy-MM-dd or yyyy-MM-ddTHH:mm, UTC).";
        if (!string.IsNullOrEmpty(Before) && ParseCursor(Before) is null) return $"before: '{Before}' is not a page cursor (follow the page's Older link).";
        return null;
    }

    /// <summary>The filters, trimmed and parsed (call <see cref="Validate"/> first).</summary>
    public JobsFilters Filters => new(
        Blank(Repository), Blank(Ref), Blank(Template),
        Blank(Status), string.IsNullOrEmpty(Status) ? null : JobStatusNames.TryParse(Status, out var s) ? s : null,
        Blank(From), ParseTime(From, endOfDay: false),
        Blank(To), ParseTime(To, endOfDay: true),
        ParseCursor(Before));

    /// <summary>The cursor of the page after <paramref name="job"/>: its creation time (UTC ticks) and id.</summary>
    public static string Cursor(Job job) => $"{job.CreatedAt.UtcTicks.ToString(CultureInfo.InvariantCulture)}_{job.Id:N}";

    /// <summary>
    /// One page, newest first, after <paramref name="cursor"/>: keyset paging on (created at, id) descending, on the
    /// (repository|status, created_at) indexes — as fast on the thousandth page as on the first. The plain upper bound
    /// on created_at (also on the first page) is what lets the planners start the index scan there: Postgres cannot
    /// seek on the OR alone, and SQLite otherwise sorts the whole table when the filters are on columns without an
    /// index (ref, template) — docs/benchmarks.md, "Web UI". Used by the jobs page and <c>GET /api/v1/jobs?cursor=</c>.
    /// </summary>
    public static async Task<(List<Job> Rows, string? Next)> PageAsync(IQueryable<Job> jobs, (DateTimeOffset At, Guid Id)? cursor, int size, CancellationToken ct)
    {
        var (at, after) = cursor ?? (DateTimeOffset.MaxValue, Guid.Empty);
        jobs = jobs.Where(j => j.CreatedAt <= at);
        if (cursor is not null) jobs = jobs.Where(j => j.CreatedAt < at || (j.CreatedAt == at && j.Id.CompareTo(after) < 0));
        var rows = await jobs.OrderByDescending(j => j.CreatedAt).ThenByDescending(j => j.Id).Take(size + 1).ToListAsync(ct);
        var shown = rows.Take(size).ToList();
        return (shown, rows.Count > size ? Cursor(shown[^1]) : null);
    }

    public static (DateTimeOffset At, Guid Id)? ParseCursor(string? cursor)
    {
        var parts = cursor?.Split('_');
        return parts is [var ticks, var id] && long.TryParse(ticks, NumberStyles.None, CultureInfo.InvariantCulture, out var t)
            && t is >= 0 and <= 3155378975999999999 && Guid.TryParseExact(id, "N", out var g)
            ? (new DateTimeOffset(t, TimeSpan.Zero), g)
            : null;
    }

    private static DateTimeOffset? ParseTime(string? text, bool endOfDay)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        text = text.Trim();
        if (DateTime.TryParseExact(text, TimeFormats, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var utc))
        {
            var at = new DateTimeOffset(DateTime.SpecifyKind(utc, DateTimeKind.Utc));
            return endOfDay && text.Length == "yyyy-MM-dd".Length ? at.AddDays(1) : at;
        }
        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var withOffset) && text.Contains('T')
            ? withOffset.ToUniversalTime()
            : null;
    }

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}

/// <summary>The jobs page's filters as applied (text as given, for the form and the paging links; values as parsed, for the query).</summary>
public sealed record JobsFilters(
    string? Repository, string? Ref, string? Template,
    string? Status, JobStatus? StatusValue,
    string? From, DateTimeOffset? FromValue,
    string? To, DateTimeOffset? ToValue,
    (DateTimeOffset At, Guid Id)? Cursor)
{
    /// <summary>The filters as a query string (without the cursor), for the paging links.</summary>
    public IEnumerable<(string Name, string? Value)> Parameters =>
        [("repository", Repository), ("ref", Ref), ("template", Template), ("status", Status), ("from", From), ("to", To)];
}
