using EphemeralCI.Contracts.Jobs;
using EphemeralCI.GitHubActions.GitHub;
using EphemeralCI.GitHubActions.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.GitHubActions.Services;

/// <summary>
/// Does what a workflow job's row calls for: launch a queued one (claim → JIT config → EphemeralCI job), or finish
/// one that is over (cancel a job that never ran, remove the runner from GitHub). Safe to call any number of times.
/// </summary>
public sealed class RunnerLauncher(
    WorkflowJobs rows, GitHubAppClient github, IRunnerJobs jobs, IOptions<GitHubActionsOptions> options,
    TimeProvider clock, ILogger<RunnerLauncher> logger)
{
    /// <summary>The step's environment variable that carries the JIT config.</summary>
    public const string JitVariable = "GITHUB_JIT_CONFIG";

    /// <summary>
    /// The ref every runner job carries. GitHub hands a JIT runner any queued job of its repository (or, for an organisation
    /// runner, of its runner group) whose labels it has — not necessarily the workflow job it was registered for — so the
    /// branch of that workflow job is not something anyone vouches for about the work the runner will do. A ref no branch
    /// has keeps branch-bound broker secrets and the branch's cache scope (a feature branch writing into main's) out of reach;
    /// the Actions runner gets the workflow's own secrets from GitHub.
    /// </summary>
    public const string RunnerRef = "refs/eci/github-actions-runner";

    /// <summary>The intake's limit on a job's name: a long branch name must not get the runner job refused.</summary>
    private const int MaxJobName = 200;

    public async Task HandleAsync(long workflowJobId, CancellationToken ct)
    {
        var (_, row) = await rows.UpdateAsync(workflowJobId, _ => false, ct);
        switch (row)
        {
            case { State: RunnerState.Queued, GitHubStatus: "queued" }:
                await LaunchAsync(workflowJobId, ct);
                break;
            case { State: RunnerState.Queued } or { State: RunnerState.Abandoned }:
                await FinishAsync(row, ct);
                break;
            case { State: RunnerState.Launched }:
                await FinishIfOverAsync(row, ct);
                break;
        }
    }

    private async Task LaunchAsync(long id, CancellationToken ct)
    {
        var (claimed, row) = await rows.UpdateAsync(id, r => r.TryClaimLaunch(clock.GetUtcNow()), ct);
        if (!claimed) return;
        var template = options.Value.Templates[row!.Template!];

        JitRunner runner;
        try
        {
            runner = await github.GenerateJitConfigAsync(row.InstallationId, row.Repository, template, row.RunnerName!, ct);
        }
        catch (Exception ex) when (ex is RunnerNameTakenException or HttpRequestException)
        {
            // A name taken (409) means a runner for this workflow job exists already: never a second one.
            await rows.UpdateAsync(id, r => r.TryAbandon(ex.Message, null, clock.GetUtcNow()), ct);
            logger.LogWarning("Workflow job {WorkflowJobId} in {Repository}: no runner started: {Error}", id, row.Repository, ex.Message);
            return;
        }

        Guid eciJob;
        try
        {
            eciJob = await jobs.SubmitAsync(RunnerJobSpec(
                $"GitHub Actions runner for workflow job {row.Id} (run {row.RunId}, {row.Ref})", row.Repository, row.CommitSha, template, runner.EncodedJitConfig),
                $"github-workflow-job-{id}", ct);
        }
        catch (Exception ex) when (ex is RunnerJobRefusedException or HttpRequestException)
        {
            // The JIT config dies with this attempt: the registered runner is removed, never handed to another job.
            await rows.UpdateAsync(id, r => r.TryAbandon(ex.Message, runner.RunnerId, clock.GetUtcNow()), ct);
            logger.LogWarning("Workflow job {WorkflowJobId} in {Repository}: the runner job was not accepted: {Error}", id, row.Repository, ex.Message);
            return;
        }
        await rows.UpdateAsync(id, r => r.TryLaunched(runner.RunnerId, eciJob, clock.GetUtcNow()), ct);
        logger.LogInformation("Workflow job {WorkflowJobId} in {Repository}: runner {RunnerName} ({RunnerId}) starts as job {JobId} on template {Template}",
            id, row.Repository, row.RunnerName, runner.RunnerId, eciJob, row.Template);
    }

    /// <summary>
    /// The one-step job. Its repository and commit are the workflow job's it was launched for (vouched for by GitHub's
    /// signed webhook or GitHub's API), or a warm runner's (<see cref="WarmRunnerPool"/>); its ref is <see cref="RunnerRef"/>,
    /// not a branch (see there); it asks for no secrets; the JIT config is in the step's environment only, never in its
    /// script, name or the job's summary.
    /// </summary>
    internal static JobSpec RunnerJobSpec(string name, string repository, string commitSha, GitHubRunnerTemplate template, string jitConfig) => new()
    {
        Name = name.Length <= MaxJobName ? name : name[..(MaxJobName - 3)] + "...",
        Repository = repository,
        Ref = RunnerRef,
        CommitSha = commitSha,
        RunnerTemplate = template.RunnerTemplate,
        TimeoutSeconds = template.TimeoutSeconds,
        // The Actions runner checks out what the workflow asks for itself.
        Checkout = CheckoutSpec.Skip,
        MaskedEnv = [JitVariable],
        Steps = [new StepSpec { Name = "GitHub Actions runner", Run = template.RunnerCommand, Env = new Dictionary<string, string> { [JitVariable] = jitConfig } }],
    };

    private async Task FinishIfOverAsync(WorkflowJobRunner row, CancellationToken ct)
    {
        var status = await jobs.StatusAsync(row.EciJobId!.Value, ct);
        var notOver = status is JobStatus.Queued or JobStatus.Provisioning or JobStatus.Running;
        if (notOver && row.CompletedWithoutOurRunner && !await rows.RunnerHasJobAsync(row.RunnerName!, ct))
        {
            // Cancelled, or taken by another runner, before ours got it: ours would wait for a job that never comes.
            await jobs.CancelAsync(row.EciJobId.Value, "the workflow job completed without this runner", ct);
        }
        else if (notOver)
        {
            // A runner that has a job exits after it by itself (one job per JIT runner); GitHub may have given ours another
            // queued workflow job with its labels than the one it was started for: never cancelled while it runs one.
            return;
        }
        await FinishAsync(row, ct);
    }

    private async Task FinishAsync(WorkflowJobRunner row, CancellationToken ct)
    {
        if (row.RunnerId is { } runnerId)
        {
            var template = row.Template is { } t && options.Value.Templates.TryGetValue(t, out var found) ? found : null;
            await github.DeleteRunnerAsync(row.InstallationId, row.Repository, template?.Organization ?? false, runnerId, ct);
        }
        var reason = row.State == RunnerState.Abandoned ? row.Reason ?? "abandoned" : $"workflow job {row.GitHubStatus}";
        if ((await rows.UpdateAsync(row.Id, r => r.TryFinish(reason, clock.GetUtcNow()), ct)).Applied)
        {
            logger.LogInformation("Workflow job {WorkflowJobId} in {Repository}: done ({Reason}){Removed}",
                row.Id, row.Repository, reason, row.RunnerId is { } id ? $"; runner {id} removed from GitHub" : "");
        }
    }
}
