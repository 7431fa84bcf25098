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

/// <summary>Configuration section <c>Provisioner:Limits</c>. 0 or absent = unlimited.</summary>
public sealed class RunnerLimitOptions
{
    public const string Section = "Provisioner:Limits";
    /// <summary>Most runners alive at once per backend name, e.g. <c>PerBackend:local = 4</c>.</summary>
    public Dictionary<string, int> PerBackend { get; set; } = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>Most runners alive at once for any one repository.</summary>
    public int PerRepository { get; set; }
    /// <summary>Per-repository exceptions, e.g. <c>Repositories:acme/app = 1</c>.</summary>
    public Dictionary<string, int> Repositories { get; set; } = new(StringComparer.Ordinal);

    public int? ForBackend(string? backend) => backend is not null && PerBackend.TryGetValue(backend, out var n) && n > 0 ? n : null;
    public int? ForRepository(string? repository) =>
        repository is not null && Repositories.TryGetValue(repository, out var n) ? (n > 0 ? n : null) : PerRepository > 0 ? PerRepository : null;
}

/// <summary>
/// Concurrency limits per backend and per repository. A job over a limit is recorded as Waiting
/// (its RabbitMQ message is acknowledged at once, not held) and RunnerWaiting tells the intake why;
/// when a runner is released the pump starts waiting jobs in arrival order. A runner holds its slot
/// until its cleanup is done (Released), so "alive at once" counts the kill and cleanup too, but not the
/// independent teardown check that follows. Sits between the deduplicator and
/// the scheduler. Limits hold across provisioner instances: they count every instance's runners, and
/// decisions are taken one at a time across instances (a Postgres advisory lock).
/// </summary>
public sealed class RunnerLimiter(
    IServiceScopeFactory scopes,
    RunnerTemplateCatalog templates,
    JobLocks locks,
    ProvisionerInstance instance,
    IOptions<RunnerLimitOptions> options,
    OutboxSignal outbox,
    TimeProvider clock,
    ILogger<RunnerLimiter> logger) : BackgroundService
{
    private static readonly RunnerState[] Holding = [RunnerState.Provisioning, RunnerState.Running, RunnerState.Finished];
    // Admission and the pump decide one at a time; never held while waiting for a job's lock.
    private readonly SemaphoreSlim _decide = new(1, 1);
    private readonly SemaphoreSlim _wake = new(0);

    /// <summary>A slot may have freed: start waiting jobs that now fit.</summary>
    private int _waitingLeft;

    public void Signal()
    {
        if (_wake.CurrentCount == 0) _wake.Release();
    }

    /// <summary>Records a new runner row as Provisioning (start now) or Waiting (with the reason sent to the intake). True = start now.</summary>
    public async Task<bool> AdmitAsync(ProvisionerDbContext db, RunnerRecord runner, CancellationToken ct)
    {
        runner.Backend ??= templates.TryGet(runner.Template, out var template) ? template.Backend : null;
        await _decide.WaitAsync(ct);
        try
        {
            // Behind anyone of the same repository already waiting: order within a repository is kept.
            // (Across repositories the pump, woken by every teardown, starts the oldest fitting job first.)
            await using var decision = await LockDecisionsAsync(db, ct);
            var queued = await db.Runners.AnyAsync(r => r.State == RunnerState.Waiting && r.Repository == runner.Repository, ct);
            var reason = queued ? "waiting behind earlier jobs of this repository for a free runner" : (await FullAsync(db, runner.Backend, runner.Repository, 0, 0, ct))?.Reason;
            if (reason is not null) runner.MoveTo(RunnerState.Waiting);
            db.Runners.Add(runner);
            if (reason is not null) db.AddToOutbox(new RunnerWaiting(runner.JobId, reason, clock.GetUtcNow()), clock);
            await db.SaveChangesAsync(ct);
            if (reason is not null)
            {
                outbox.Notify();
                logger.LogInformation("Job {JobId} waits: {Reason}", runner.JobId, reason);
                Signal(); // if it only queued behind others, the pump decides when it fits
            }
            return reason is null;
        }
        finally
        {
            _decide.Release();
        }
    }

    /// <summary>Which limit is full for one more runner of this backend and repository (beyond <paramref name="extraBackend"/>/<paramref name="extraRepository"/> just admitted), or null.</summary>
    private async Task<(string Reason, bool Backend)?> FullAsync(ProvisionerDbContext db, string? backend, string? repository, int extraBackend, int extraRepository, CancellationToken ct)
    {
        var o = options.Value;
        if (o.ForBackend(backend) is { } perBackend &&
            await db.Runners.CountAsync(r => r.Backend == backend && Holding.Contains(r.State), ct) + extraBackend >= perBackend)
        {
            return ($"waiting for a free runner: backend '{backend}' is at its limit of {perBackend} concurrent runner(s)", true);
        }
        if (o.ForRepository(repository) is { } perRepository &&
            await db.Runners.CountAsync(r => r.Repository == repository && Holding.Contains(r.State), ct) + extraRepository >= perRepository)
        {
            return ($"waiting for a free runner: repository '{repository}' is at its limit of {perRepository} concurrent runner(s)", false);
        }
        return null;
    }

    // Any constant ("ECIPROV1"): the one advisory lock under which every instance counts runners and admits one.
    private const long DecisionLockKey = 4990913421383783985;

    /// <summary>
    /// On Postgres (several instances may share it), the decision lock held on this context's connection
    /// until disposed; null on SQLite, which one process owns (the in-process semaphore is enough there).
    /// A session lock rather than a transaction's: the retrying execution strategy refuses user transactions,
    /// and a connection that breaks releases it with the session.
    /// </summary>
    private static async Task<IAsyncDisposable?> LockDecisionsAsync(ProvisionerDbContext db, CancellationToken ct)
    {
        if (db.Database.ProviderName?.Contains("Npgsql", StringComparison.Ordinal) != true) return null;
        await db.Database.OpenConnectionAsync(ct);
        try
        {
            await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_lock({DecisionLockKey})", ct);
        }
        catch
        {
            await db.Database.CloseConnectionAsync();
            throw;
        }
        return new DecisionLock(db);
    }

    private sealed class DecisionLock(ProvisionerDbContext db) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            try
            {
                await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_unlock({DecisionLockKey})", CancellationToken.None);
            }
            finally
            {
                await db.Database.CloseConnectionAsync();
            }
        }
    }

    /// <summary>Starts the waiting jobs that fit now, oldest first. Returns how many were started.</summary>
    public async Task<int> PumpAsync(CancellationToken ct)
    {
        var chosen = new List<Guid>();
        await _decide.WaitAsync(ct);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
            await using var decision = await LockDecisionsAsync(db, ct);
            // Its own waiting jobs (a dead instance's become its own by adoption); limits count every instance's runners.
            var waiting = await db.Runners.Where(r => r.State == RunnerState.Waiting && (r.Instance == null || r.Instance == instance.Name))
                .OrderBy(r => r.CreatedAt).ThenBy(r => r.JobId).ToListAsync(ct);
            var blockedBackends = new HashSet<string?>();
            var blockedRepositories = new HashSet<string?>();
            var startedPerBackend = new Dictionary<string, int>();
            var startedPerRepository = new Dictionary<string, int>();
            foreach (var runner in waiting)
            {
                // Strict order within a backend or repository: once one waits, the later ones wait too.
                if (blockedBackends.Contains(runner.Backend) || blockedRepositories.Contains(runner.Repository)) continue;
                var reason = await FullAsync(db, runner.Backend, runner.Repository,
                    startedPerBackend.GetValueOrDefault(runner.Backend ?? ""), startedPerRepository.GetValueOrDefault(runner.Repository ?? ""), ct);
                if (reason is { } full)
                {
                    // A full backend holds back every later job on it; a full repository only that repository's.
                    if (full.Backend) blockedBackends.Add(runner.Backend);
                    blockedRepositories.Add(runner.Repository);
                    continue;
                }
                runner.MoveTo(RunnerState.Provisioning);
                chosen.Add(runner.JobId);
                startedPerBackend[runner.Backend ?? ""] = startedPerBackend.GetValueOrDefault(runner.Backend ?? "") + 1;
                startedPerRepository[runner.Repository ?? ""] = startedPerRepository.GetValueOrDefault(runner.Repository ?? "") + 1;
            }
            await db.SaveChangesAsync(ct);
            _waitingLeft = waiting.Count - chosen.Count;
        }
        finally
        {
            _decide.Release();
        }

        // In parallel: each start is its own job (own lock, own scope), and a burst of freed slots
        // should not queue behind one another's sandbox start-up.
        await Task.WhenAll(chosen.Select(jobId => StartWaitingAsync(jobId, ct)));
        return chosen.Count;
    }

    private async Task StartWaitingAsync(Guid jobId, CancellationToken ct)
    {
        using var _ = await locks.AcquireAsync(jobId, ct);
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        var runner = await db.Runners.FirstOrDefaultAsync(r => r.JobId == jobId, ct);
        // Cancelled while we decided: nothing to start.
        if (runner is null || runner.State != RunnerState.Provisioning || runner.FinishedAt is not null) return;
        using var trace = JobTrace.Continue(ProvisionerTelemetry.Source, runner.TraceParent, "runner leaves the wait");
        logger.LogInformation("Job {JobId} leaves the wait: starting its runner", jobId);
        var job = new RunJob(jobId, runner.Template ?? "", runner.Repository ?? "", runner.Ref ?? "", runner.TimeoutSeconds, runner.CreatedAt, runner.CommitSha, runner.Environment);
        await scope.ServiceProvider.GetRequiredService<RunnerScheduler>().ScheduleAsync(runner, job, ct);
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
                // Woken when one of this instance's runners frees its slot. A slot another instance frees
                // wakes nobody here, so while jobs wait the pump looks again every 2 s; otherwise the
                // timeout is only a safety net.
                await _wake.WaitAsync(TimeSpan.FromSeconds(_waitingLeft > 0 ? 2 : 10), stoppingToken);
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
