using System.Text.Json;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Model;

namespace EphemeralCI.Intake.WebUi;

/// <summary>A job not over, with where its runner is (backend, once the provisioner said) and, while it waits, why.</summary>
internal sealed record ActiveJob(Job Job, string? Backend, string? WaitingReason, DateTimeOffset? WaitingSince);

/// <summary>
/// One template's warm pools (on one backend), summed over the provisioner instances whose reports are fresh, as of
/// the oldest of those reports.
/// </summary>
public sealed record WarmPoolTotal(string Template, string Backend, int Target, int Ready, int Instances, DateTimeOffset AsOf)
{
    /// <summary>The rows still fresh at <paramref name="now"/> (a stopped or cut-off instance's are not), summed per template and backend.</summary>
    public static IReadOnlyList<WarmPoolTotal> Of(IEnumerable<ReportedWarmPool> reported, DateTimeOffset now) =>
        [.. reported.Where(p => p.FreshUntil > now)
            .GroupBy(p => (p.Template, p.Backend))
            // One row per instance and template: the rows of a group are its instances.
            .Select(g => new WarmPoolTotal(g.Key.Template, g.Key.Backend, g.Sum(p => p.Target), g.Sum(p => p.Ready), g.Count(), g.Min(p => p.ReportedAt)))
            .OrderBy(t => t.Template, StringComparer.Ordinal).ThenBy(t => t.Backend, StringComparer.Ordinal)];
}

/// <summary>
/// The runners page: jobs with a runner (provisioning or running) by backend and template, the jobs still waiting,
/// and the warm pools the provisioners reported (the same table in every deployment, the all-in-one server too).
/// </summary>
internal sealed record RunnersView(
    IReadOnlyList<IGrouping<(string Backend, string Template), ActiveJob>> Running, IReadOnlyList<ActiveJob> Waiting, bool Truncated,
    IReadOnlyList<WarmPoolTotal> WarmPools, DateTimeOffset Now)
{
    /// <summary>At most this many jobs not over are read (oldest first); more is said, not shown.</summary>
    public const int MaxJobs = 500;

    public static RunnersView Of(IReadOnlyList<Job> active, IReadOnlyList<JobEvent> events, IEnumerable<ReportedWarmPool> warmPools, DateTimeOffset now)
    {
        var byJob = events.ToLookup(e => e.JobId);
        var jobs = active.Take(MaxJobs).Select(job =>
        {
            // Entries of earlier attempts count as well: a retried job is provisioned again and says so again, later.
            var timeline = byJob[job.Id].ToList();
            var backend = timeline.Where(e => e.Type is JobEventTypes.RunnerStarted or JobEventTypes.Provisioning).Select(BackendOf).LastOrDefault(b => b is not null);
            var waiting = timeline.LastOrDefault(e => e.Type == JobEventTypes.Waiting);
            var startedAfter = waiting is not null && timeline.Any(e => e.Type == JobEventTypes.RunnerStarted && e.At >= waiting.At);
            return job.Status == JobStatus.Queued || (waiting is not null && !startedAfter && job.Status != JobStatus.Running)
                ? new ActiveJob(job, backend, waiting?.Message ?? "queued: no provisioner has taken it yet", waiting?.At)
                : new ActiveJob(job, backend, null, null);
        }).ToList();
        var running = jobs.Where(j => j.WaitingReason is null)
            .GroupBy(j => (j.Backend ?? "(not yet known)", j.Job.RunnerTemplate))
            .OrderBy(g => g.Key.Item1, StringComparer.Ordinal).ThenBy(g => g.Key.RunnerTemplate, StringComparer.Ordinal)
            .ToList();
        return new RunnersView(running, jobs.Where(j => j.WaitingReason is not null).ToList(), active.Count > MaxJobs,
            WarmPoolTotal.Of(warmPools, now), now);
    }

    private static string? BackendOf(JobEvent e)
    {
        if (e.Data is null) return null;
        using var data = JsonDocument.Parse(e.Data);
        return data.RootElement.TryGetProperty("backend", out var b) && b.ValueKind == JsonValueKind.String ? b.GetString() : null;
    }
}
