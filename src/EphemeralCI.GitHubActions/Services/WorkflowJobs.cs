using EphemeralCI.GitHubActions.Infrastructure;
using EphemeralCI.GitHubActions.Model;
using EphemeralCI.GitHubActions.Telemetry;
using EphemeralCI.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.GitHubActions.Services;

/// <summary>
/// The one way a workflow job's row changes: <see cref="ObserveAsync"/> for what GitHub says (webhook or listing),
/// <see cref="UpdateAsync"/> for a transition, retried on a lost optimistic-concurrency race with a fresh read.
/// </summary>
public sealed class WorkflowJobs(
    IServiceScopeFactory scopes, IOptions<GitHubActionsOptions> options, LaunchQueue queue, TimeProvider clock,
    GitHubActionsMetrics metrics, ILogger<WorkflowJobs> logger)
{
    private readonly GitHubActionsOptions _options = options.Value;
    // Deliveries of one workflow job in this process take turns to record it (the unique key still guards replicas).
    private readonly SemaphoreSlim[] _stripes = Enumerable.Range(0, 64).Select(_ => new SemaphoreSlim(1, 1)).ToArray();

    /// <summary>Records what GitHub says of a workflow job and queues the work it calls for. Idempotent.</summary>
    public async Task ObserveAsync(WorkflowJobEvent e, CancellationToken ct)
    {
        if (!Serves(e.Repository)) return;
        var stripe = _stripes[(int)((ulong)e.WorkflowJobId % (ulong)_stripes.Length)];
        await stripe.WaitAsync(ct);
        try
        {
            await RecordAsync(e, ct);
        }
        finally
        {
            stripe.Release();
        }
        queue.Enqueue(e.WorkflowJobId);
        // A warm runner took this workflow job: it leaves the pool, whose slot is refilled at once (not at the next pass).
        if (WarmRunner.IsWarmName(e.RunnerName) && e.Status != "queued"
            && (await VersionedRows.UpdateAsync<WarmRunner>(scopes, e.RunnerName!, w => w.TryTaken(e.WorkflowJobId, clock.GetUtcNow()), ct)).Applied)
        {
            queue.RequestRefill();
        }
    }

    private async Task RecordAsync(WorkflowJobEvent e, CancellationToken ct)
    {
        var (template, notAllowedOn) = MatchTemplate(e.Labels, e.Repository);
        var (_, row) = await UpdateAsync(e.WorkflowJobId, r => r.TryObserve(e.Status, e.RunnerName, clock.GetUtcNow()), ct);
        if (row is null)
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<GitHubActionsDbContext>();
            db.WorkflowJobs.Add(WorkflowJobRunner.Seen(e, template, clock.GetUtcNow(),
                notAllowedOn is null ? null : $"repository not allowed on template '{notAllowedOn}'"));
            try
            {
                await db.SaveChangesAsync(ct);
                // Told once per workflow job (the row's insert): later deliveries and passes meet the finished row.
                if (notAllowedOn is not null)
                {
                    logger.LogInformation("Workflow job {WorkflowJobId} of {Repository} gets no runner: the repository is not allowed on template {Template}",
                        e.WorkflowJobId, e.Repository, notAllowedOn);
                    metrics.NotAllowed(notAllowedOn);
                }
            }
            catch (DbUpdateException ex) when (ex.IsUniqueViolation())
            {
                // Another delivery of the same workflow job won the insert: apply this one's status to its row.
                await UpdateAsync(e.WorkflowJobId, r => r.TryObserve(e.Status, e.RunnerName, clock.GetUtcNow()), ct);
            }
        }
    }

    /// <summary>Applies <paramref name="change"/> to a fresh copy until it saves or declines; null row when unknown.</summary>
    public Task<(bool Applied, WorkflowJobRunner? Row)> UpdateAsync(long id, Func<WorkflowJobRunner, bool> change, CancellationToken ct) =>
        VersionedRows.UpdateAsync(scopes, id, change, ct);

    /// <summary>Whether GitHub says <paramref name="runnerName"/> is running a workflow job (any, not only the one it was started for).</summary>
    public async Task<bool> RunnerHasJobAsync(string runnerName, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GitHubActionsDbContext>();
        return await db.WorkflowJobs.AnyAsync(j => j.AssignedRunner == runnerName && j.GitHubStatus == "in_progress", ct);
    }

    public async Task<IReadOnlyList<long>> OpenAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GitHubActionsDbContext>();
        return await db.WorkflowJobs.AsNoTracking()
            .Where(j => j.State == RunnerState.Queued || j.State == RunnerState.Launched || j.State == RunnerState.Abandoned)
            .Select(j => j.Id).ToListAsync(ct);
    }

    public bool Serves(string repository) => _options.Repositories.Contains(repository, StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// The first template (by name) whose labels cover every <c>runs-on</c> label and whose allow-list admits the
    /// repository. None: NotAllowedOn names the first covering template when the allow-lists alone refused it.
    /// </summary>
    public (string? Template, string? NotAllowedOn) MatchTemplate(IReadOnlyCollection<string> labels, string repository)
    {
        var covering = _options.Templates.OrderBy(t => t.Key, StringComparer.Ordinal).Where(t => t.Value.Covers(labels)).ToList();
        var allowed = covering.FirstOrDefault(t => t.Value.Allows(repository)).Key;
        return (allowed, allowed is null ? covering.FirstOrDefault().Key : null);
    }
}
