using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Model;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Intake.Services;

/// <summary>
/// Keeps the provisioners' warm pool reports for the Runners page: one row per instance and template, the newest
/// report of an instance replaces its rows (templates it no longer reports go), and rows stale for an hour are deleted.
/// </summary>
public sealed class WarmPoolReports(IntakeDbContext db, TimeProvider clock, ILogger<WarmPoolReports> logger)
{
    /// <summary>Records <paramref name="report"/>; false when it was refused or is older than what is recorded for its instance.</summary>
    public async Task<bool> RecordAsync(WarmPoolReport report, CancellationToken ct)
    {
        if (Problem(report) is { } problem)
        {
            // Dropped, not retried: the same message would be refused again.
            logger.LogWarning("Ignored a warm pool report: {Problem}", problem);
            return false;
        }
        var now = clock.GetUtcNow();
        var recorded = await db.ReportedWarmPools.Where(p => p.Instance == report.Instance).ToListAsync(ct);
        var newer = !recorded.Any(p => p.ReportedAt >= report.At);
        // A redelivery, or a report overtaken by a newer one of the same instance, changes nothing.
        if (newer)
        {
            var freshUntil = now + WarmPoolReport.MissedReportsUntilStale * ClampedInterval(report.Interval);
            var byTemplate = recorded.ToDictionary(p => p.Template, StringComparer.Ordinal);
            foreach (var pool in report.Pools)
            {
                if (!byTemplate.Remove(pool.Template, out var row))
                {
                    row = new ReportedWarmPool { Instance = report.Instance, Template = pool.Template, Backend = pool.Backend };
                    db.ReportedWarmPools.Add(row);
                }
                row.Backend = pool.Backend;
                row.Target = pool.Target;
                row.Ready = pool.Ready;
                row.ReportedAt = report.At;
                row.FreshUntil = freshUntil;
            }
            // Templates this instance keeps no pool for any more.
            db.ReportedWarmPools.RemoveRange(byTemplate.Values);
            await db.SaveChangesAsync(ct);
        }
        var cutoff = now - ReportedWarmPool.KeptAfterStale;
        await db.ReportedWarmPools.Where(p => p.FreshUntil < cutoff).ExecuteDeleteAsync(ct);
        return newer;
    }

    /// <summary>What is wrong with a report, naming the field; null when nothing is.</summary>
    public static string? Problem(WarmPoolReport report)
    {
        if (string.IsNullOrWhiteSpace(report.Instance) || report.Instance.Length > WarmPoolReport.MaxInstanceLength)
            return $"instance: 1 to {WarmPoolReport.MaxInstanceLength} characters";
        if (report.Pools is null || report.Pools.Count > WarmPoolReport.MaxPools)
            return $"pools: at most {WarmPoolReport.MaxPools} (instance '{report.Instance}')";
        foreach (var pool in report.Pools)
        {
            if (pool is null || string.IsNullOrWhiteSpace(pool.Template) || pool.Template.Length > WarmPoolReport.MaxTemplateLength)
                return $"pools.template: 1 to {WarmPoolReport.MaxTemplateLength} characters (instance '{report.Instance}')";
            if (string.IsNullOrWhiteSpace(pool.Backend) || pool.Backend.Length > WarmPoolReport.MaxBackendLength)
                return $"pools.backend: 1 to {WarmPoolReport.MaxBackendLength} characters (template '{pool.Template}')";
            if (pool.Target < 0 || pool.Ready < 0) return $"pools.target, pools.ready: not negative (template '{pool.Template}')";
        }
        if (report.Pools.Select(p => p.Template).Distinct(StringComparer.Ordinal).Count() != report.Pools.Count)
            return $"pools.template: each template once (instance '{report.Instance}')";
        return null;
    }

    private static TimeSpan ClampedInterval(TimeSpan interval) =>
        interval < WarmPoolReport.MinInterval ? WarmPoolReport.MinInterval : interval > WarmPoolReport.MaxInterval ? WarmPoolReport.MaxInterval : interval;
}
