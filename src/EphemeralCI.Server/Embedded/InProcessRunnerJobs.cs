using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.GitHubActions.GitHub;
using EphemeralCI.GitHubActions.Services;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Model;
using EphemeralCI.Intake.Services;
using EphemeralCI.Intake.Validation;
using EphemeralCI.RunnerTemplates;
using EphemeralCI.SecretsBroker.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Server.Embedded;

/// <summary>
/// The GitHub Actions adapter's jobs in the all-in-one server: the intake's own validation and submission service,
/// no API key to create or store. The identity (repository, ref, sha) is vouched for by GitHub: it comes from an
/// HMAC-verified webhook or from GitHub's API as the App, and only for the repositories the operator configured.
/// Recorded as <c>submittedBy: github-app:{AppId}</c>.
/// </summary>
internal sealed class InProcessRunnerJobs(IServiceScopeFactory scopes, IOptions<EphemeralCI.GitHubActions.GitHubActionsOptions> options) : IRunnerJobs
{
    public async Task<Guid> SubmitAsync(JobSpec spec, string idempotencyKey, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var template = scope.ServiceProvider.GetRequiredService<RunnerTemplateCatalog>().Find(spec.RunnerTemplate);
        var errors = JobSpecValidator.Validate(spec, template);
        if (errors.Count > 0 || template is null)
        {
            throw new RunnerJobRefusedException(template is null
                ? $"runner template '{spec.RunnerTemplate}' is not defined"
                : string.Join("; ", errors.Select(e => $"{e.Key}: {string.Join(", ", e.Value)}")));
        }
        var submitter = new JobSubmitter(null, $"github-app:{options.Value.AppId}");
        var (outcome, job) = await scope.ServiceProvider.GetRequiredService<JobSubmissionService>().SubmitAsync(spec, template, submitter, idempotencyKey, ct);
        return outcome == SubmissionOutcome.KeyReused
            ? throw new RunnerJobRefusedException($"a job for {idempotencyKey} exists already with another spec")
            : job.Id;
    }

    public async Task<JobStatus?> StatusAsync(Guid jobId, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<IntakeDbContext>();
        return await db.Jobs.AsNoTracking().Where(j => j.Id == jobId).Select(j => (JobStatus?)j.Status).FirstOrDefaultAsync(ct);
    }

    public async Task CancelAsync(Guid jobId, string reason, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<JobUpdater>().UpdateAsync(jobId, null, change =>
        {
            if (!change.Job.TryMoveTo(JobStatus.Cancelled, change.Now, reason)) return false;
            change.AddEvent(JobEventTypes.CancelRequested, $"cancel requested by the GitHub Actions adapter: {reason}");
            change.AddEvent(JobEventTypes.Cancelled, "cancelled");
            change.Publish(new CancelJob(change.Job.Id, change.Now));
            return true;
        }, ct);
    }
}

/// <summary>The GitHub App's private key and webhook secret from the broker's store in this process, audited as actor <c>github-actions</c>.</summary>
internal sealed class InProcessGitHubAppSecrets(IServiceScopeFactory scopes) : IGitHubAppSecrets
{
    public async Task<string?> ReadAsync(string name, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var secret = await scope.ServiceProvider.GetRequiredService<SecretStore>().ReadOperatorSecretAsync(name, "github-actions", ct);
        return secret?.Value;
    }
}
