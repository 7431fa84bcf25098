using System.Collections.Concurrent;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.GitHubActions;
using EphemeralCI.GitHubActions.GitHub;
using EphemeralCI.GitHubActions.Infrastructure;
using EphemeralCI.GitHubActions.Model;
using EphemeralCI.GitHubActions.Services;
using EphemeralCI.IntegrationTests.Infrastructure;
using EphemeralCI.IntegrationTests.SecretsBroker;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit;

namespace EphemeralCI.IntegrationTests.GitHubActions;

/// <summary>
/// The adapter module as its own service on real Postgres (its migrations, its version-checked launch claim), against
/// <see cref="FakeGitHub"/> over HTTP, webhooks through Kestrel. The intake here is a recording stand-in (the real one
/// is in the end-to-end tests): what matters is how many jobs the adapter asks for.
/// </summary>
public sealed class WorkflowJobStateTests : IAsyncLifetime
{
    private FakeGitHub _github = null!;
    private WebApplication _app = null!;
    private readonly RecordingRunnerJobs _jobs = new();
    private readonly CapturedLogs _logs = new();
    private Uri _webhook = null!;

    private sealed class RecordingRunnerJobs : IRunnerJobs
    {
        public ConcurrentQueue<(string Key, JobSpec Spec)> Submitted { get; } = new();
        public Task<Guid> SubmitAsync(JobSpec spec, string idempotencyKey, CancellationToken ct)
        {
            Submitted.Enqueue((idempotencyKey, spec));
            return Task.FromResult(Guid.NewGuid());
        }
        public Task<JobStatus?> StatusAsync(Guid jobId, CancellationToken ct) => Task.FromResult<JobStatus?>(JobStatus.Running);
        public Task CancelAsync(Guid jobId, string reason, CancellationToken ct) => Task.CompletedTask;
    }

    private sealed class Secrets(FakeGitHub github) : IGitHubAppSecrets
    {
        public Task<string?> ReadAsync(string name, CancellationToken ct) => Task.FromResult<string?>(name switch
        {
            "ECI_GITHUB_APP_PRIVATE_KEY" => github.PrivateKeyPem,
            "ECI_GITHUB_WEBHOOK_SECRET" => github.WebhookSecret,
            _ => null,
        });
    }

    public async Task InitializeAsync()
    {
        _github = await FakeGitHub.StartAsync();
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders().AddProvider(_logs).SetMinimumLevel(LogLevel.Debug);
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:githubactionsdb"] = await RealServices.CreateDatabaseAsync("gha"),
            ["GitHubActions:AppId"] = _github.AppId,
            ["GitHubActions:ApiUrl"] = _github.Url,
            ["GitHubActions:Repositories:0"] = "acme/widgets",
            ["GitHubActions:ReconcileInterval"] = "01:00:00",
            ["GitHubActions:Templates:linux:RunnerTemplate"] = "default",
            ["GitHubActions:Templates:linux:Labels:0"] = "self-hosted",
            ["GitHubActions:Templates:linux:Labels:1"] = "linux",
        });
        builder.Services.AddSingleton<IRunnerJobs>(_jobs);
        builder.Services.AddSingleton<IGitHubAppSecrets>(new Secrets(_github));
        Assert.True(builder.AddGitHubActions());
        _app = builder.Build();
        _app.MapGitHubActions();
        await _app.StartAsync();
        _webhook = new Uri(new Uri(_app.Urls.First()), "/github/webhook");
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        await _github.DisposeAsync();
    }

    [Fact]
    public async Task Concurrent_duplicate_deliveries_and_launches_give_each_workflow_job_one_JIT_config_and_one_job_and_a_409_none()
    {
        var jobs = Enumerable.Range(0, 5).Select(_ => _github.Unlisted("acme/widgets", "self-hosted", "linux")).ToList();
        var taken = _github.Unlisted("acme/widgets", "linux");
        _github.RegisterRunner($"eci-{taken.Id}", "acme/widgets");
        var launcher = () => _app.Services.CreateScope().ServiceProvider.GetRequiredService<RunnerLauncher>();

        var work = new List<Task>();
        foreach (var job in jobs.Append(taken))
        {
            var delivery = Guid.NewGuid().ToString();
            for (var i = 0; i < 4; i++)
            {
                work.Add(_github.DeliverAsync(_webhook, "queued", job, i % 2 == 0 ? delivery : null).ContinueWith(t => t.Result.EnsureSuccessStatusCode()));
                work.Add(Task.Run(() => launcher().HandleAsync(job.Id, default)));
            }
        }
        await Task.WhenAll(work);

        var db = _app.Services.CreateScope().ServiceProvider.GetRequiredService<GitHubActionsDbContext>();
        Assert.False(db.Database.HasPendingModelChanges(), "GitHub Actions: Postgres migrations are behind the model");
        var deadline = DateTime.UtcNow.AddSeconds(30);
        List<WorkflowJobRunner> rows;
        do
        {
            await Task.Delay(100);
            rows = await db.WorkflowJobs.AsNoTracking().ToListAsync();
        } while (rows.Any(r => r.State is RunnerState.Queued or RunnerState.Launching) && DateTime.UtcNow < deadline);

        foreach (var job in jobs)
        {
            Assert.Equal(RunnerState.Launched, rows.Single(r => r.Id == job.Id).State);
            Assert.Single(_github.Runners, r => r.Name == $"eci-{job.Id}");
            var submitted = Assert.Single(_jobs.Submitted, s => s.Key == $"github-workflow-job-{job.Id}");
            var jit = _github.Runners.Single(r => r.Name == $"eci-{job.Id}").JitConfig;
            // The JIT config travels in the one step's environment and is named for masking; never in the script.
            Assert.Equal(jit, submitted.Spec.Steps!.Single().Env!["GITHUB_JIT_CONFIG"]);
            Assert.Equal(["GITHUB_JIT_CONFIG"], submitted.Spec.MaskedEnv);
            Assert.DoesNotContain(jit, submitted.Spec.Steps!.Single().Run);
            Assert.DoesNotContain(_logs.Lines, l => l.Contains(jit));
        }
        // GitHub's 409 (a runner by that name exists): no second runner, no job; the row says why.
        var conflicted = rows.Single(r => r.Id == taken.Id);
        Assert.Contains("already has a runner", conflicted.Reason);
        Assert.DoesNotContain(_jobs.Submitted, s => s.Key == $"github-workflow-job-{taken.Id}");
        Assert.Equal(jobs.Count, _jobs.Submitted.Count);
        Assert.Equal((jobs.Count + 1) * 3, await db.Deliveries.CountAsync()); // per job: one id sent twice, two fresh ids
    }
}
