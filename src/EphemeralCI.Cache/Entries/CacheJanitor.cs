using EphemeralCI.Cache.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry;

namespace EphemeralCI.Cache.Entries;

/// <summary>
/// Periodically, one pass each: entries unused for <c>Cache:ExpireAfterUnused</c> are deleted;
/// reservations older than <c>Cache:UploadTimeout</c> are dropped with their staged upload; staging
/// folders with no reservation behind them (a crash mid-upload) are removed; every repository over
/// its quota is trimmed, least recently used first (each ref within its own budget, other refs before the default branch);
/// records of what jobs were served older than <c>Cache:UseRecordRetention</c> are deleted.
/// </summary>
public sealed class CacheJanitor(
    IServiceScopeFactory scopes, UploadStaging staging, IOptions<CacheOptions> options, TimeProvider clock, ILogger<CacheJanitor> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // A background pass is not a job's work: no root trace of its own (the Aspire dashboard drowned in them).
        using var quiet = SuppressInstrumentationScope.Begin();
        using var timer = new PeriodicTimer(options.Value.JanitorInterval, clock);
        do
        {
            try
            {
                await SweepAsync(stoppingToken);
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(e, "Cache janitor pass failed; retrying next interval");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>One full pass; returns what it removed.</summary>
    public async Task<JanitorReport> SweepAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<CacheDbContext>();
        var entries = scope.ServiceProvider.GetRequiredService<CacheEntryService>();
        var now = clock.GetUtcNow();

        var expiredBefore = now - options.Value.ExpireAfterUnused;
        var expired = await db.Entries.AsNoTracking()
            .Where(e => e.State != CacheEntryState.Reserved && e.LastAccessedAt < expiredBefore).ToListAsync(cancellationToken);
        foreach (var entry in expired) await entries.DeleteAsync(entry, cancellationToken);

        var abandonedBefore = now - options.Value.UploadTimeout;
        var abandoned = await db.Entries.AsNoTracking()
            .Where(e => e.State == CacheEntryState.Reserved && e.CreatedAt < abandonedBefore).ToListAsync(cancellationToken);
        foreach (var entry in abandoned) await entries.DeleteAsync(entry, cancellationToken);

        var staged = staging.StagedEntryIds().ToList();
        var reserved = await db.Entries.Where(e => staged.Contains(e.Id) && e.State == CacheEntryState.Reserved).Select(e => e.Id).ToListAsync(cancellationToken);
        var orphans = staged.Except(reserved).ToList();
        foreach (var id in orphans) await staging.DeleteAsync(id, cancellationToken);

        var evicted = await entries.EnforceAllQuotasAsync(cancellationToken);

        // What was served to jobs long over: their attestations were made minutes after they ended.
        await scope.ServiceProvider.GetRequiredService<CacheUseLog>().DeleteOlderThanAsync(now - options.Value.UseRecordRetention, cancellationToken);

        var report = new JanitorReport(expired.Count, abandoned.Count, orphans.Count, evicted);
        if (report != JanitorReport.Nothing) logger.LogInformation("Cache janitor: {Expired} expired, {Abandoned} abandoned uploads, {Orphans} orphaned staging folders, {Evicted} evicted over quota", report.Expired, report.AbandonedUploads, report.OrphanedStaging, report.Evicted);
        return report;
    }

}

public sealed record JanitorReport(int Expired, int AbandonedUploads, int OrphanedStaging, int Evicted)
{
    public static readonly JanitorReport Nothing = new(0, 0, 0, 0);
}
