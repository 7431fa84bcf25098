using EphemeralCI.Contracts.Messages;
using EphemeralCI.Messaging;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Ownership;
using EphemeralCI.Provisioner.Telemetry;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry;

namespace EphemeralCI.Provisioner.Scheduling;

/// <summary>
/// The limiter's other half: starts waiting jobs that now fit, oldest first, whenever
/// <see cref="RunnerSlots"/> says a slot may have freed (a runner released or destroyed, a job queued
/// or adopted). A slot another instance frees raises nothing here, so while this instance's jobs wait
/// it looks again every 2 s. Jobs waiting for any instance (a draining one handed them over) are started
/// by whichever pump takes them first; a draining instance's pump starts nothing.
/// </summary>
public sealed class WaitingRunnerPump(
    IServiceScopeFactory scopes,
    RunnerSlots slots,
    LimitDecisions decisions,
    ProvisionerDrain drain,
    JobLocks locks,
    ProvisionerInstance instance,
    IOptions<RunnerLimitOptions> options,
    TimeProvider clock,
    ILogger<WaitingRunnerPump> logger) : BackgroundService
{
    private static readonly TimeSpan WhileJobsWait = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan SafetyNet = TimeSpan.FromSeconds(10);
    private int _waitingLeft;

    /// <summary>Starts the waiting jobs that fit now, oldest first. Returns how many were started.</summary>
    public async Task<int> PumpAsync(CancellationToken ct)
    {
        IReadOnlyList<Guid> chosen;
        if (drain.Draining)
        {
            _waitingLeft = 0;
            return 0;
        }
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
            await using (await decisions.EnterAsync(db, ct))
            {
                // Its own waiting jobs (a dead instance's become its own by adoption); limits count every instance's runners.
                var waiting = await db.Runners.Where(r => r.State == RunnerState.Waiting && (r.Instance == null || r.Instance == instance.Name))
                    .OrderBy(r => r.CreatedAt).ThenBy(r => r.JobId).ToListAsync(ct);
                if (waiting.Count == 0)
                {
                    _waitingLeft = 0;
                    return 0;
                }
                var holding = await LimitDecisions.CountHoldingAsync(db, null, null, all: true, ct);
                chosen = new RunnerLimitRules(options.Value).ChooseToStart(waiting.Select(r => new WaitingRunner(r.JobId, r.Backend, r.Repository)), holding);
                var start = chosen.ToHashSet();
                foreach (var runner in waiting.Where(r => start.Contains(r.JobId)))
                {
                    runner.Instance ??= instance.Name; // a job waiting for any instance (handed over by a draining one) is ours now
                    runner.MoveTo(RunnerState.Provisioning);
                }
                await db.SaveChangesAsync(ct);
                _waitingLeft = waiting.Count - chosen.Count;
            }
        }

        // In parallel: each start is its own job (own lock, own scope), and a burst of freed slots
        // should not queue behind one another's sandbox start-up.
        await Task.WhenAll(chosen.Select(jobId => StartAsync(jobId, ct)));
        return chosen.Count;
    }

    private async Task StartAsync(Guid jobId, CancellationToken ct)
    {
        using var _ = await locks.AcquireAsync(jobId, ct);
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        var runner = await db.Runners.FirstOrDefaultAsync(r => r.JobId == jobId, ct);
        // Cancelled while we decided: nothing to start.
        if (runner is null || runner.State != RunnerState.Provisioning || runner.FinishedAt is not null) return;
        using var trace = JobTrace.Continue(ProvisionerTelemetry.Source, runner.TraceParent, "runner leaves the wait");
        logger.LogInformation("Job {JobId} leaves the wait: starting its runner", jobId);
        var job = new RunJob(jobId, runner.Template ?? "", runner.Repository ?? "", runner.Ref ?? "", runner.TimeoutSeconds, runner.CreatedAt, runner.CommitSha, runner.Environment, runner.Attempt);
        await scope.ServiceProvider.GetRequiredService<IRunnerStarter>().StartAsync(new RunnerRequest(job, runner), ct);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // A background pass is not a job's work: no root trace of its own (the Aspire dashboard drowned in them).
        using var quiet = SuppressInstrumentationScope.Begin();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await PumpAsync(stoppingToken);
                await slots.WaitAsync(_waitingLeft > 0 ? WhileJobsWait : SafetyNet, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "Starting waiting jobs failed; retrying");
                await Task.Delay(TimeSpan.FromSeconds(1), clock, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }
}
