using EphemeralCI.RunnerTemplates;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Messaging;
using EphemeralCI.Provisioner.Infrastructure;
using Microsoft.EntityFrameworkCore;
using EphemeralCI.Persistence;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

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
/// The admission stage: concurrency limits per backend and per repository. The deduplicator's claim
/// is written here, in one insert, as Provisioning (start now: handed to the next stage) or Waiting
/// (its RabbitMQ message is acknowledged at once, not held, and RunnerWaiting tells the intake why);
/// the insert's primary key settles a race between instances for the same job. Waiting jobs are
/// started in arrival order by <see cref="WaitingRunnerPump"/>. A runner holds its slot until its
/// cleanup is done (Released), so "alive at once" counts the kill and cleanup too, but not the
/// independent teardown check that follows. Limits hold across provisioner instances: they count every
/// instance's runners, one decision at a time (<see cref="LimitDecisions"/>). A draining instance
/// (<see cref="ProvisionerDrain"/>) claims every job as waiting, for any instance to start.
/// </summary>
public sealed class RunnerLimiter(
    ProvisionerDbContext db,
    IRunnerStarter next,
    LimitDecisions decisions,
    ProvisionerDrain drain,
    RunnerTemplateCatalog templates,
    IOptions<RunnerLimitOptions> options,
    TimeProvider clock,
    ILogger<RunnerLimiter> logger) : IRunnerAdmission
{
    public async Task AdmitAsync(RunnerRequest request, CancellationToken ct)
    {
        // A start cut short already holds its slot: it starts again at once.
        if (request.Resumed || await ClaimAsync(request.Runner, ct)) await next.StartAsync(request, ct);
    }

    /// <summary>Writes the runner row as Provisioning or Waiting. True = start now; false = it waits, or another instance claimed the job first.</summary>
    private async Task<bool> ClaimAsync(RunnerRecord runner, CancellationToken ct)
    {
        runner.Backend ??= templates.TryGet(runner.Template, out var template) ? template.Backend : null;
        LimitReached? wait;
        await using (await decisions.EnterAsync(db, ct))
        {
            var earlierWaits = await db.Runners.AnyAsync(r => r.State == RunnerState.Waiting && r.Repository == runner.Repository, ct);
            var holding = earlierWaits ? RunnerCounts.None : await LimitDecisions.CountHoldingAsync(db, runner.Backend, runner.Repository, all: false, ct);
            wait = new RunnerLimitRules(options.Value).WhyWait(runner.Backend, runner.Repository, holding, earlierWaits);
            if (drain.Draining)
            {
                // This instance starts nothing new: the job waits for any instance (another one's pump, or this one's after resume).
                wait ??= new LimitReached(drain.Reason, Backend: false);
                runner.Instance = null;
            }
            if (wait is not null) runner.MoveTo(RunnerState.Waiting);
            db.Runners.Add(runner);
            if (wait is not null) db.AddToOutbox(new RunnerWaiting(runner.JobId, wait.Reason, clock.GetUtcNow()), clock);
            try
            {
                await db.SaveChangesAsync(ct);
            }
            catch (DbUpdateException ex) when (ex.IsUniqueViolation())
            {
                // Another provisioner instance wrote the job's row first: its runner is the job's one runner.
                db.ChangeTracker.Clear();
                logger.LogInformation("Job {JobId} was claimed concurrently; RunJob ignored", runner.JobId);
                return false;
            }
        }
        if (wait is not null) logger.LogInformation("Job {JobId} waits: {Reason}", runner.JobId, wait.Reason);
        return wait is null;
    }
}
