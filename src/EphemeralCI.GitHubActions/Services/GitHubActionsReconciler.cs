using EphemeralCI.GitHubActions.GitHub;
using EphemeralCI.GitHubActions.Model;
using EphemeralCI.GitHubActions.Apis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.GitHubActions.Services;

/// <summary>
/// Every <c>ReconcileInterval</c>: lists the queued jobs of each served repository's queued workflow runs (a missed
/// or late webhook), then takes every open row one step further (launch, cancel, remove the runner of a job that is over), then
/// tends the warm runner pools (<see cref="WarmRunnerPool"/>).
/// </summary>
public sealed class GitHubActionsReconciler(
    IServiceScopeFactory scopes, WorkflowJobs rows, IOptions<GitHubActionsOptions> options, TimeProvider clock,
    ILogger<GitHubActionsReconciler> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.ReconcileInterval, clock);
        do
        {
            try
            {
                await PassAsync(stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning("GitHub Actions reconcile pass failed: {Error}", ex.Message);
            }
        } while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    private bool _toldKeyMissing;

    public async Task PassAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        if (await scope.ServiceProvider.GetRequiredService<IGitHubAppSecrets>().ReadAsync(options.Value.PrivateKeySecret, ct) is null)
        {
            // A fresh installation before the operator put the App's key: say so once, not every pass.
            if (!_toldKeyMissing) logger.LogInformation("GitHub Actions adapter idle until the secrets broker has '{Secret}' (the GitHub App's private key)", options.Value.PrivateKeySecret);
            _toldKeyMissing = true;
            return;
        }
        var github = scope.ServiceProvider.GetRequiredService<GitHubAppClient>();
        foreach (var repository in options.Value.Repositories)
        {
            try
            {
                var installation = await github.RepositoryInstallationAsync(repository, ct);
                foreach (var job in await github.QueuedJobsAsync(installation, repository, ct))
                {
                    await rows.ObserveAsync(new WorkflowJobEvent(job.Id, job.RunId, installation, repository,
                        WebhookApi.BranchRef(job.HeadBranch ?? ""), job.HeadSha, job.Labels, "queued", null), ct);
                }
            }
            catch (HttpRequestException ex)
            {
                logger.LogWarning("Listing queued workflow jobs of {Repository} failed: {Error}", repository, ex.Message);
            }
        }
        var launcher = scope.ServiceProvider.GetRequiredService<RunnerLauncher>();
        foreach (var id in await rows.OpenAsync(ct))
        {
            try
            {
                await launcher.HandleAsync(id, ct);
            }
            catch (HttpRequestException ex)
            {
                logger.LogWarning("Workflow job {WorkflowJobId}: {Error}", id, ex.Message);
            }
        }
        // After the rows: a warm runner that took a workflow job is out of its pool before the pool is refilled.
        await scope.ServiceProvider.GetRequiredService<WarmRunnerPool>().PassAsync(ct);
    }
}
