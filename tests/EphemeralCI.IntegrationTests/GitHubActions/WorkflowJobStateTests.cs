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
using Microsoft.Extensions.Options;
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
        public ConcurrentQueue<(string Key, JobSpec Spec, Guid Id)> Submitted { get; } = new();
        /// <summary>Every job runs until a test says otherwise (or cancels it).</summary>
        public ConcurrentDictionary<Guid, JobStatus> Status { get; } = new();
        public Task<Guid> SubmitAsync(JobSpec spec, string idempotencyKey, CancellationToken ct)
        {
            var id = Guid.NewGuid();
            Submitted.Enqueue((idempotencyKey, spec, id));
            return Task.FromResult(id);
        }
        public Task<JobStatus?> StatusAsync(Guid jobId, CancellationToken ct) => Task.FromResult<JobStatus?>(Status.GetValueOrDefault(jobId, JobStatus.Running));
        public Task CancelAsync(Guid jobId, string reason, CancellationToken ct)
        {
            Status.TryUpdate(jobId, JobStatus.Cancelled, JobStatus.Running);
            Status.TryAdd(jobId, JobStatus.Cancelled);
            return Task.CompletedTask;
        }
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
            ["GitHubActions:Repositories:1"] = "other/tools",
            ["GitHubActions:ReconcileInterval"] = "01:00:00",
            ["GitHubActions:Templates:linux:RunnerTemplate"] = "default",
            ["GitHubActions:Templates:linux:Labels:0"] = "self-hosted",
            ["GitHubActions:Templates:linux:Labels:1"] = "linux",
            // Two warm runners, kept by the reconciler's passes (its first at start; the tests run more themselves).
            ["GitHubActions:Templates:warm:RunnerTemplate"] = "default",
            ["GitHubActions:Templates:warm:Labels:0"] = "self-hosted",
            ["GitHubActions:Templates:warm:Labels:1"] = "warm",
            ["GitHubActions:Templates:warm:MinIdle"] = "2",
            ["GitHubActions:Templates:warm:MaxIdleAge"] = "00:30:00",
            ["GitHubActions:Templates:warm:Repositories:0"] = "acme/widgets", // so other/tools gets no warm pool
            // A template only acme's repositories may pick; "linux" covers [self-hosted] too (by name, "big" is tried first).
            ["GitHubActions:Templates:big:RunnerTemplate"] = "default",
            ["GitHubActions:Templates:big:Labels:0"] = "self-hosted",
            ["GitHubActions:Templates:big:Labels:1"] = "big",
            ["GitHubActions:Templates:big:Repositories:0"] = "acme/*",
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
        Assert.Equal(jobs.Count, _jobs.Submitted.Count(s => s.Key.StartsWith("github-workflow-job-", StringComparison.Ordinal)));
        Assert.Equal((jobs.Count + 1) * 3, await db.Deliveries.CountAsync()); // per job: one id sent twice, two fresh ids
    }

    [Fact]
    public async Task Warm_runners_fill_the_pool_once_under_duplicated_passes_refill_when_one_takes_a_job_and_never_ask_for_secrets()
    {
        // Six passes at once (and the reconciler's own): two warm runners registered at GitHub, never a third.
        await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(PoolPassAsync)));
        var pool = await WaitForIdleAsync(2);
        Assert.Equal(2, WarmAtGitHub().Count);
        Assert.Equal(2, _jobs.Submitted.Count(s => s.Key.StartsWith("github-warm-runner-", StringComparison.Ordinal)));
        foreach (var runner in pool)
        {
            var registered = Assert.Single(_github.Runners, r => r.Name == runner.Name);
            Assert.Equal(["self-hosted", "warm"], registered.Labels);
            var spec = Assert.Single(_jobs.Submitted, s => s.Key == $"github-warm-runner-{runner.Name}").Spec;
            // No workflow job is known yet: no branch, no commit vouched for, no secrets asked for.
            Assert.Equal("acme/widgets", spec.Repository);
            Assert.Equal(RunnerLauncher.RunnerRef, spec.Ref);
            Assert.Equal(WarmRunnerPool.WarmCommit, spec.CommitSha);
            Assert.True(spec.Secrets is null or { Count: 0 });
            Assert.Equal(registered.JitConfig, spec.Steps!.Single().Env!["GITHUB_JIT_CONFIG"]);
            Assert.Equal(["GITHUB_JIT_CONFIG"], spec.MaskedEnv);
            Assert.DoesNotContain(_logs.Lines, l => l.Contains(registered.JitConfig));
        }

        // GitHub gives a queued job to one of them: it leaves the pool and a new one is started at once (no pass run here).
        var job = _github.Queue("acme/widgets", "self-hosted", "warm");
        var taker = pool[0];
        _github.Assign(job, taker.Name);
        (await _github.DeliverAsync(_webhook, "in_progress", job)).EnsureSuccessStatusCode();
        var refilled = await WaitForIdleAsync(2, r => r.Name != taker.Name);
        Assert.Equal(3, WarmAtGitHub().Count);
        var busy = await WarmRowAsync(taker.Name);
        Assert.Equal(WarmRunnerState.Busy, busy.State);
        Assert.Equal(job.Id, busy.WorkflowJobId);
        Assert.Contains(pool[1].Name, refilled.Select(r => r.Name));

        // Its workflow job over (the runner exits after its one job): removed from GitHub, the pool stays at two.
        _github.Complete(job, taker.Name);
        _jobs.Status[busy.EciJobId!.Value] = JobStatus.Succeeded;
        await PoolPassAsync();
        Assert.Equal(WarmRunnerState.Done, (await WarmRowAsync(taker.Name)).State);
        Assert.True(_github.Runners.Single(r => r.Name == taker.Name).Deleted);
        Assert.Equal(2, WarmAtGitHub().Count(r => !r.Deleted));
        Assert.Equal(0, _github.RefusedCalls);
    }

    [Fact]
    public async Task A_warm_runner_idle_too_long_is_removed_and_replaced_and_one_that_took_a_job_unannounced_is_kept()
    {
        await PoolPassAsync();
        var pool = await WaitForIdleAsync(2);
        // Both idle for longer than MaxIdleAge; GitHub gave the second a job whose delivery never came.
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GitHubActionsDbContext>();
            await db.Database.ExecuteSqlAsync($"UPDATE warm_runners SET idle_since = idle_since - interval '2 hours'");
        }
        var job = _github.Queue("acme/widgets", "self-hosted", "warm");
        _github.Assign(job, pool[1].Name);

        await PoolPassAsync();

        var stale = await WarmRowAsync(pool[0].Name);
        Assert.Equal(WarmRunnerState.Done, stale.State);
        Assert.StartsWith("recycled: idle longer than", stale.Reason);
        Assert.True(_github.Runners.Single(r => r.Name == pool[0].Name).Deleted);
        Assert.Equal(JobStatus.Cancelled, _jobs.Status[stale.EciJobId!.Value]);
        // The busy one is out of the pool, still registered (its job runs), and both slots are refilled.
        Assert.Equal(WarmRunnerState.Busy, (await WarmRowAsync(pool[1].Name)).State);
        Assert.False(_github.Runners.Single(r => r.Name == pool[1].Name).Deleted);
        var fresh = await WaitForIdleAsync(2);
        Assert.DoesNotContain(fresh, r => pool.Any(p => p.Name == r.Name));
        Assert.Equal(3, WarmAtGitHub().Count(r => !r.Deleted));
    }

    [Fact]
    public async Task A_runner_GitHub_gave_another_workflow_job_is_not_cancelled_when_its_own_job_completes_elsewhere()
    {
        // GitHub hands a JIT runner any queued job with its labels: ours for X takes Y, and X runs on someone else's runner.
        var x = _github.Unlisted("acme/widgets", "self-hosted", "linux");
        var y = _github.Unlisted("acme/widgets", "self-hosted", "linux");
        (await _github.DeliverAsync(_webhook, "queued", x)).EnsureSuccessStatusCode();
        var ours = $"eci-{x.Id}";
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!_jobs.Submitted.Any(j => j.Key == $"github-workflow-job-{x.Id}"))
        {
            Assert.True(DateTime.UtcNow < deadline, "no runner job for X");
            await Task.Delay(50);
        }
        var eciJob = _jobs.Submitted.Single(j => j.Key == $"github-workflow-job-{x.Id}").Id;
        _github.Assign(y, ours);
        (await _github.DeliverAsync(_webhook, "in_progress", y)).EnsureSuccessStatusCode();
        _github.Complete(x, "someone-elses-runner");
        (await _github.DeliverAsync(_webhook, "completed", x)).EnsureSuccessStatusCode();

        var launcher = _app.Services.CreateScope().ServiceProvider.GetRequiredService<RunnerLauncher>();
        await launcher.HandleAsync(x.Id, default);
        Assert.Equal(JobStatus.Running, _jobs.Status.GetValueOrDefault(eciJob, JobStatus.Running));
        Assert.False(_github.Runners.Single(r => r.Name == ours).Deleted);

        // A signed delivery for a repository the App is installed on but we do not serve: no row, no runner.
        var foreign = _github.Unlisted("evil/other", "self-hosted", "linux");
        (await _github.DeliverAsync(_webhook, "queued", foreign)).EnsureSuccessStatusCode();
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            Assert.False(await scope.ServiceProvider.GetRequiredService<GitHubActionsDbContext>().WorkflowJobs.AnyAsync(j => j.Id == foreign.Id));
        }
        Assert.DoesNotContain(_github.Runners, r => r.Name == $"eci-{foreign.Id}");

        // Y done, our runner exits after it: now it is removed.
        _github.Complete(y, ours);
        (await _github.DeliverAsync(_webhook, "completed", y)).EnsureSuccessStatusCode();
        _jobs.Status[eciJob] = JobStatus.Succeeded;
        await launcher.HandleAsync(x.Id, default);
        Assert.True(_github.Runners.Single(r => r.Name == ours).Deleted);
    }

    [Fact]
    public async Task Two_hundred_fifty_queued_jobs_missed_by_webhooks_over_several_pages_each_get_exactly_one_runner()
    {
        // 120 jobs in one workflow run (two pages of jobs) and 130 runs of one job each (two pages of runs).
        var big = _github.Queue("acme/widgets", "self-hosted", "linux");
        var jobs = Enumerable.Range(0, 119).Select(_ => _github.Queue("acme/widgets", big.RunId, "self-hosted", "linux")).Prepend(big)
            .Concat(Enumerable.Range(0, 130).Select(_ => _github.Queue("acme/widgets", "self-hosted", "linux"))).ToList();

        await ReconcilePassAsync();
        await ReconcilePassAsync();

        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (jobs.Any(j => !_github.Runners.Any(r => r.Name == $"eci-{j.Id}")))
        {
            Assert.True(DateTime.UtcNow < deadline, $"{jobs.Count(j => !_github.Runners.Any(r => r.Name == $"eci-{j.Id}"))} queued jobs have no runner");
            await Task.Delay(50);
        }
        foreach (var job in jobs)
        {
            Assert.Single(_github.Runners, r => r.Name == $"eci-{job.Id}");
            Assert.Single(_jobs.Submitted, s => s.Key == $"github-workflow-job-{job.Id}");
        }
        Assert.Contains(_github.PageRequests, p => p == "/repos/acme/widgets/actions/runs page 2");
        Assert.Contains(_github.PageRequests, p => p == $"/repos/acme/widgets/actions/runs/{big.RunId}/jobs page 2");
    }

    [Fact]
    public async Task A_next_page_link_off_the_API_is_not_followed_so_the_installation_token_goes_nowhere_else()
    {
        await using var thief = await FakeGitHub.StartAsync();
        _github.ForeignNextPage = $"{thief.Url.TrimEnd('/')}/repos/acme/widgets/actions/runs?page=2";
        _github.Queue("acme/widgets", "self-hosted", "linux");

        await ReconcilePassAsync();

        Assert.Empty(thief.PageRequests);
        Assert.Equal(0, thief.RefusedCalls); // an installation token it never issued would have been refused, and counted
        Assert.Contains(_logs.Lines, l => l.Contains("answered a next page outside", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_list_longer_than_MaxListPages_is_cut_there_with_a_warning_and_the_pass_goes_on()
    {
        var options = _app.Services.GetRequiredService<IOptions<GitHubActionsOptions>>().Value;
        var configured = options.MaxListPages;
        options.MaxListPages = 2; // the one options object every client of this app reads
        try
        {
            await WaitForIdleAsync(2); // warm runners: the pool pass reads the runner list to see which took a job
            for (var i = 0; i < 250; i++) _github.RegisterRunner($"many-{i}", "acme/widgets", busy: false);

            await PoolPassAsync();

            Assert.Contains(_github.PageRequests, p => p == "/repos/acme/widgets/actions/runners page 2");
            Assert.DoesNotContain(_github.PageRequests, p => p == "/repos/acme/widgets/actions/runners page 3");
            Assert.Contains(_logs.Lines, l => l.Contains("GitHub list repos/acme/widgets/actions/runners has more than 2 pages; this pass reads the first 200 entries only", StringComparison.Ordinal));
        }
        finally
        {
            options.MaxListPages = configured;
        }
    }

    [Fact]
    public async Task A_warm_runner_on_the_third_page_of_runners_that_took_a_job_unannounced_is_removed_when_the_job_is_over()
    {
        await WaitForIdleAsync(2);
        // 250 runners registered before the pool's next ones: those land on page 3 of GitHub's listing.
        for (var i = 0; i < 250; i++) _github.RegisterRunner($"other-{i}", "acme/widgets", busy: i % 2 == 0);
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GitHubActionsDbContext>();
            await db.Database.ExecuteSqlAsync($"UPDATE warm_runners SET idle_since = idle_since - interval '2 hours'");
        }
        await PoolPassAsync();
        var pool = await WaitForIdleAsync(2);
        var job = _github.Queue("acme/widgets", "self-hosted", "warm");
        _github.Assign(job, pool[0].Name);

        await PoolPassAsync();
        Assert.Contains(_github.PageRequests, p => p == "/repos/acme/widgets/actions/runners page 3");
        var taken = await WarmRowAsync(pool[0].Name);
        Assert.Equal(WarmRunnerState.Busy, taken.State);

        _github.Complete(job);
        _jobs.Status[taken.EciJobId!.Value] = JobStatus.Succeeded;
        await PoolPassAsync();
        Assert.Equal("its workflow job is over", (await WarmRowAsync(pool[0].Name)).Reason);
        Assert.True(_github.Runners.Single(r => r.Name == pool[0].Name).Deleted);
    }

    [Fact]
    public async Task A_repository_not_on_a_templates_allow_list_gets_no_runner_despite_duplicate_webhooks_and_reconcile_passes()
    {
        var counted = 0L;
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Name == EphemeralCI.GitHubActions.Telemetry.GitHubActionsMetrics.NotAllowedName) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            if (tags.ToArray().Any(t => t.Key == "template" && (string?)t.Value == "big")) Interlocked.Add(ref counted, value);
        });
        listener.Start();
        var allowed = _github.Queue("acme/widgets", "self-hosted", "big");
        var denied = _github.Queue("other/tools", "self-hosted", "big");
        // Labels another template covers: the allow-list of the first (big) does not stop it.
        var generic = _github.Queue("other/tools", "self-hosted");
        foreach (var job in new[] { allowed, denied, denied, generic })
        {
            (await _github.DeliverAsync(_webhook, "queued", job)).EnsureSuccessStatusCode();
        }
        await ReconcilePassAsync();
        (await _github.DeliverAsync(_webhook, "queued", denied)).EnsureSuccessStatusCode();
        await ReconcilePassAsync();

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!_github.Runners.Any(r => r.Name == $"eci-{allowed.Id}") || !_github.Runners.Any(r => r.Name == $"eci-{generic.Id}"))
        {
            Assert.True(DateTime.UtcNow < deadline, "the allowed jobs got no runner");
            await Task.Delay(50);
        }
        Assert.Equal("big", (await RowAsync(allowed.Id)).Template);
        Assert.Equal("linux", (await RowAsync(generic.Id)).Template);
        var refused = await RowAsync(denied.Id);
        Assert.Equal(RunnerState.Done, refused.State);
        Assert.Null(refused.Template);
        Assert.Equal("repository not allowed on template 'big'", refused.Reason);
        Assert.DoesNotContain(_github.Runners, r => r.Name == $"eci-{denied.Id}");
        Assert.DoesNotContain(_jobs.Submitted, s => s.Key == $"github-workflow-job-{denied.Id}");
        // Told once, with the repository and the template, however often GitHub or the reconciler mention the job.
        Assert.Single(_logs.Lines, l => l.Contains($"Workflow job {denied.Id} of other/tools gets no runner") && l.Contains("template big"));
        Assert.Equal(1, Interlocked.Read(ref counted));
        // No warm runner of a template for a repository not on its list.
        Assert.DoesNotContain(WarmAtGitHub(), r => r.Repository == "other/tools");
    }

    private async Task<WorkflowJobRunner> RowAsync(long id)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<GitHubActionsDbContext>().WorkflowJobs.AsNoTracking().SingleAsync(r => r.Id == id);
    }

    private async Task ReconcilePassAsync() =>
        await _app.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<GitHubActionsReconciler>().Single().PassAsync(default);

    private async Task PoolPassAsync()
    {
        await using var scope = _app.Services.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<WarmRunnerPool>().PassAsync(default);
    }

    private List<FakeGitHub.FakeRunner> WarmAtGitHub() => _github.Runners.Where(r => r.Name.StartsWith(WarmRunner.NamePrefix, StringComparison.Ordinal)).ToList();

    private async Task<WarmRunner> WarmRowAsync(string name)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<GitHubActionsDbContext>().WarmRunners.AsNoTracking().SingleAsync(r => r.Name == name);
    }

    /// <summary>Waits until exactly <paramref name="count"/> warm runners are idle and none is launching; they are answered by slot.</summary>
    private async Task<List<WarmRunner>> WaitForIdleAsync(int count, Func<WarmRunner, bool>? also = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            await using var scope = _app.Services.CreateAsyncScope();
            var rows = await scope.ServiceProvider.GetRequiredService<GitHubActionsDbContext>().WarmRunners.AsNoTracking()
                .Where(r => r.State == WarmRunnerState.Idle || r.State == WarmRunnerState.Launching).OrderBy(r => r.Slot).ToListAsync();
            if (rows.Count == count && rows.All(r => r.State == WarmRunnerState.Idle && (also?.Invoke(r) ?? true))) return rows;
            Assert.True(rows.Count <= count, $"{rows.Count} warm runners hold slots; the pool's target is {count}");
            Assert.True(DateTime.UtcNow < deadline, $"not {count} idle warm runners within 30 s: {string.Join(", ", rows.Select(r => $"{r.Name} {r.State}"))}");
            await Task.Delay(50);
        }
    }
}
