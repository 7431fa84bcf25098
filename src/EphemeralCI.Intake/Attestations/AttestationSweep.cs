using System.Collections.Concurrent;
using EphemeralCI.Attestations;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Model;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Intake.Attestations;

/// <summary>
/// Attests jobs as they become ready (<see cref="AttestationSignal"/>), and every <c>SweepInterval</c>
/// looks for jobs that are over, whose runner was destroyed and checked, and that have no attestation
/// yet — the signer was down, the intake restarted — and attests them. Off with <c>Attestations:Enabled=false</c>.
/// </summary>
public sealed class AttestationSweep(
    IServiceScopeFactory scopes, AttestationSignal signal, IOptions<AttestationOptions> options, TimeProvider clock, ILogger<AttestationSweep> logger) : BackgroundService
{
    private const int BatchSize = 50;
    private static readonly JobStatus[] Terminal = [JobStatus.Succeeded, JobStatus.Failed, JobStatus.Cancelled, JobStatus.TimedOut];
    // Jobs that will never be attested (their runner's teardown was not checked): not asked about again.
    private readonly ConcurrentDictionary<Guid, byte> _never = new();
    // A job the signer failed for waits this long before the next try, so a broker outage is not hammered.
    private static readonly TimeSpan FailureBackoff = TimeSpan.FromSeconds(10);
    private readonly ConcurrentDictionary<Guid, DateTimeOffset> _failedUntil = new();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.Enabled) return;
        var reader = signal.Reader;
        var nextSweep = clock.GetUtcNow();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (clock.GetUtcNow() >= nextSweep)
                {
                    await SweepAsync(stoppingToken);
                    nextSweep = clock.GetUtcNow() + options.Value.SweepInterval;
                }
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                wait.CancelAfter(Max(nextSweep - clock.GetUtcNow(), TimeSpan.Zero));
                try
                {
                    await reader.WaitToReadAsync(wait.Token);
                }
                catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
                {
                    continue; // time to sweep
                }
                while (reader.TryRead(out var jobId)) await TryAttestAsync(jobId, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "Attestation sweep failed; trying again at the next one");
                nextSweep = clock.GetUtcNow() + options.Value.SweepInterval;
            }
        }
    }

    /// <summary>Jobs over in the last <see cref="Lookback"/>, runner destroyed, no attestation: newest first, a batch at a time.</summary>
    public async Task SweepAsync(CancellationToken ct)
    {
        List<Guid> pending;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<IntakeDbContext>();
            var since = clock.GetUtcNow() - Lookback;
            pending = await db.Jobs.AsNoTracking()
                .Where(j => Terminal.Contains(j.Status) && j.FinishedAt >= since
                    && j.DestroyedAttempt == j.Attempt && db.JobEvents.Any(e => e.JobId == j.Id && e.Type == JobEventTypes.RunnerDestroyed && e.Data != null)
                    && !db.JobEvents.Any(e => e.JobId == j.Id && e.Type == JobEventTypes.Attested))
                .OrderByDescending(j => j.FinishedAt)
                .Select(j => j.Id)
                .Take(BatchSize * 4)
                .ToListAsync(ct);
        }
        var now = clock.GetUtcNow();
        foreach (var jobId in pending.Where(id => !_never.ContainsKey(id)).Where(id => !_failedUntil.TryGetValue(id, out var until) || until <= now).Take(BatchSize))
        {
            await TryAttestAsync(jobId, ct);
        }
    }

    private async Task TryAttestAsync(Guid jobId, CancellationToken ct)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var outcome = await scope.ServiceProvider.GetRequiredService<JobAttestor>().AttestAsync(jobId, ct);
            _failedUntil.TryRemove(jobId, out _);
            if (outcome == AttestationOutcome.Attested) logger.LogInformation("Job {JobId} attested", jobId);
            if (outcome is AttestationOutcome.NotVerifiable or AttestationOutcome.NotFound) _never[jobId] = 0;
        }
        catch (AttestationSigningException ex)
        {
            _failedUntil[jobId] = clock.GetUtcNow() + FailureBackoff;
            logger.LogWarning("Job {JobId} not attested yet: {Reason}", jobId, ex.Message);
        }
    }

    /// <summary>How far back the sweep looks: older jobs (before attestations existed) are left as they are.</summary>
    public static readonly TimeSpan Lookback = TimeSpan.FromDays(7);

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;
}
