using EphemeralCI.Contracts.Jobs;
using EphemeralCI.GitHubActions.GitHub;
using EphemeralCI.GitHubActions.Infrastructure;
using EphemeralCI.GitHubActions.Model;
using EphemeralCI.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.GitHubActions.Services;

/// <summary>
/// Keeps every template's <c>MinIdle</c> warm runners (ARC's <c>minRunners</c>): per pool (template × repository, or
/// template × organization for organization runners) it removes runners whose job is over, recycles idle ones older than
/// <c>MaxIdleAge</c>, and fills the free slots. Safe to run concurrently in any number of processes: a slot is claimed by
/// inserting its row (unique among launching and idle rows), every other move is version-checked.
/// </summary>
public sealed class WarmRunnerPool(
    IServiceScopeFactory scopes, GitHubActionsDbContext db, GitHubAppClient github, IRunnerJobs jobs,
    IOptions<GitHubActionsOptions> options, TimeProvider clock, ILogger<WarmRunnerPool> logger)
{
    /// <summary>A launch claimed this long ago and never completed died with its process: its slot is freed.</summary>
    internal static readonly TimeSpan LaunchGivenUpAfter = TimeSpan.FromMinutes(10);

    /// <summary>
    /// The repository an organization warm runner's job carries: <c>owner/eci/github-actions-org-runner</c>, a path no GitHub
    /// repository can have (GitHub's are owner/name), so no repository's secret or cache policy can match it.
    /// </summary>
    public static string OrganizationRunnerRepository(string organization) => $"{organization}/eci/github-actions-org-runner";

    public async Task PassAsync(CancellationToken ct)
    {
        var o = options.Value;
        var pools = new HashSet<(string, string)>();
        foreach (var (name, template) in o.Templates.Where(t => t.Value.MinIdle > 0).OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            // Repository runners register per repository; organization runners per organization (its first served repository's installation).
            // Only repositories on the template's allow-list get its warm runners (an organization's: when one of its repositories is).
            var allowed = o.Repositories.Where(template.Allows).ToList();
            var scopes = template.Organization
                ? allowed.GroupBy(r => r.Split('/')[0], StringComparer.OrdinalIgnoreCase).Select(g => (Scope: g.Key, Via: g.First()))
                : allowed.Select(r => (Scope: r, Via: r));
            foreach (var (scope, via) in scopes)
            {
                pools.Add((name, scope));
                try
                {
                    await TendAsync(name, template, scope, via, ct);
                }
                catch (HttpRequestException ex)
                {
                    logger.LogWarning("Warm runners of template {Template} for {Scope}: {Error}", name, scope, ex.Message);
                }
            }
        }
        // Pools no longer configured (template removed, MinIdle 0, repository no longer served) drain: their runners are removed.
        foreach (var stray in (await ActiveAsync(_ => true, ct)).Where(r => !pools.Contains((r.Template, r.Scope))))
        {
            await RemoveAsync(stray, "its pool is no longer configured", ct);
        }
    }

    private async Task TendAsync(string name, GitHubRunnerTemplate template, string scope, string via, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var active = await ActiveAsync(r => r.Template == name && r.Scope == scope, ct);
        // GitHub's own word on which runners took a job: a delivery naming one may never have come.
        var idle = active.Where(r => r.State == WarmRunnerState.Idle).ToList();
        var busy = idle.Count == 0 ? new HashSet<string>()
            : await github.BusyRunnersAsync(idle[0].InstallationId, RegisteredAt(idle[0]), idle[0].Organization, ct);
        foreach (var runner in active)
        {
            if (runner.State == WarmRunnerState.Idle && busy.Contains(runner.Name))
            {
                await Update(runner, r => r.TryTaken(null, clock.GetUtcNow()), ct);
                continue;
            }
            switch (runner.State)
            {
                case WarmRunnerState.Launching when now - runner.CreatedAt > LaunchGivenUpAfter:
                    await EndAsync(runner, "the launch never completed", ct);
                    break;
                case WarmRunnerState.Idle or WarmRunnerState.Busy when await IsOverAsync(runner, ct):
                    await RemoveAsync(runner, runner.State == WarmRunnerState.Busy ? "its workflow job is over" : "its job ended without a workflow job", ct);
                    break;
                case WarmRunnerState.Idle when runner.Slot >= template.MinIdle:
                    await RecycleAsync(runner, template, "MinIdle lowered", ct);
                    break;
                case WarmRunnerState.Idle when now - runner.IdleSince > template.MaxIdleAge:
                    await RecycleAsync(runner, template, $"idle longer than {template.MaxIdleAge}", ct);
                    break;
            }
        }
        var held = (await ActiveAsync(r => r.Template == name && r.Scope == scope
            && (r.State == WarmRunnerState.Launching || r.State == WarmRunnerState.Idle), ct)).Select(r => r.Slot).ToHashSet();
        long? installation = null;
        for (var slot = 0; slot < template.MinIdle; slot++)
        {
            if (held.Contains(slot)) continue;
            installation ??= await github.RepositoryInstallationAsync(via, ct);
            await LaunchAsync(WarmRunner.Claim(name, scope, slot, installation.Value, clock.GetUtcNow()), template, ct);
        }
    }

    private async Task LaunchAsync(WarmRunner claim, GitHubRunnerTemplate template, CancellationToken ct)
    {
        db.WarmRunners.Add(claim);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException ex) when (ex.IsUniqueViolation())
        {
            db.ChangeTracker.Clear();
            return; // another pass (or replica) filled this slot first
        }
        finally
        {
            db.ChangeTracker.Clear();
        }

        JitRunner runner;
        try
        {
            runner = await github.GenerateJitConfigAsync(claim.InstallationId, RegisteredAt(claim), template, claim.Name, ct);
        }
        catch (Exception ex) when (ex is RunnerNameTakenException or HttpRequestException)
        {
            await EndAsync(claim, ex.Message, ct);
            throw new HttpRequestException($"no warm runner registered: {ex.Message}");
        }
        Guid eciJob;
        try
        {
            eciJob = await jobs.SubmitAsync(RunnerLauncher.RunnerJobSpec(
                $"GitHub Actions warm runner {claim.Name} (template {claim.Template}, {claim.Scope})",
                template.Organization ? OrganizationRunnerRepository(claim.Scope) : claim.Scope, WarmCommit, template, runner.EncodedJitConfig),
                $"github-warm-runner-{claim.Name}", ct);
        }
        catch (Exception ex) when (ex is RunnerJobRefusedException or HttpRequestException)
        {
            // The JIT config dies with this attempt: the registered runner is removed, never handed to another job.
            await github.DeleteRunnerAsync(claim.InstallationId, RegisteredAt(claim), claim.Organization, runner.RunnerId, ct);
            await EndAsync(claim, ex.Message, ct, runner.RunnerId);
            throw new HttpRequestException($"warm runner {claim.Name} was not accepted: {ex.Message}");
        }
        await Update(claim, r => r.TryIdle(runner.RunnerId, eciJob, clock.GetUtcNow()), ct);
        logger.LogInformation("Warm runner {RunnerName} ({RunnerId}) of template {Template} for {Scope} starts as job {JobId}",
            claim.Name, runner.RunnerId, claim.Template, claim.Scope, eciJob);
    }

    /// <summary>
    /// The commit a warm runner's job carries: none (all zeros). It is bound to no workflow job yet, so no commit is vouched
    /// for; its attestation's subject says exactly that.
    /// </summary>
    public static readonly string WarmCommit = new('0', 40);

    /// <summary>Removes it from GitHub first (so GitHub cannot hand it a job meanwhile), then cancels its job; a busy one (422) is left to finish its job.</summary>
    private async Task RecycleAsync(WarmRunner runner, GitHubRunnerTemplate template, string why, CancellationToken ct)
    {
        if (!await github.DeleteRunnerAsync(runner.InstallationId, RegisteredAt(runner), runner.Organization, runner.RunnerId!.Value, ct))
        {
            // It took a workflow job whose delivery we missed: out of the pool, removed when its job is over.
            await Update(runner, r => r.TryTaken(null, clock.GetUtcNow()), ct);
            return;
        }
        await jobs.CancelAsync(runner.EciJobId!.Value, $"warm runner recycled: {why}", ct);
        if (await EndAsync(runner, $"recycled: {why}", ct))
        {
            logger.LogInformation("Warm runner {RunnerName} of template {Template} for {Scope} recycled ({Why})", runner.Name, runner.Template, runner.Scope, why);
        }
    }

    private async Task RemoveAsync(WarmRunner runner, string why, CancellationToken ct)
    {
        if (runner.RunnerId is { } id) await github.DeleteRunnerAsync(runner.InstallationId, RegisteredAt(runner), runner.Organization, id, ct);
        if (runner.EciJobId is { } job) await jobs.CancelAsync(job, $"warm runner removed: {why}", ct);
        await EndAsync(runner, why, ct);
    }

    private async Task<bool> IsOverAsync(WarmRunner runner, CancellationToken ct) =>
        await jobs.StatusAsync(runner.EciJobId!.Value, ct) is not (JobStatus.Queued or JobStatus.Provisioning or JobStatus.Running);

    /// <summary><see cref="GitHubAppClient"/> takes <c>owner/name</c> and uses the owner alone for organization runners.</summary>
    private static string RegisteredAt(WarmRunner runner) => runner.Organization ? runner.Scope + "/-" : runner.Scope;

    private async Task<bool> EndAsync(WarmRunner runner, string reason, CancellationToken ct, long? runnerId = null) =>
        await Update(runner, r => r.TryEnd(reason, runnerId, clock.GetUtcNow()), ct);

    private async Task<bool> Update(WarmRunner runner, Func<WarmRunner, bool> change, CancellationToken ct) =>
        (await VersionedRows.UpdateAsync(scopes, runner.Name, change, ct)).Applied;

    private async Task<List<WarmRunner>> ActiveAsync(System.Linq.Expressions.Expression<Func<WarmRunner, bool>> filter, CancellationToken ct) =>
        await db.WarmRunners.AsNoTracking().Where(r => r.State != WarmRunnerState.Done).Where(filter).ToListAsync(ct);
}
