using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.Data.Sqlite;
using Xunit;

namespace EphemeralCI.EndToEndTests.GitHubActions;

/// <summary>
/// The all-in-one server with its GitHub Actions adapter on, as a GitHub App against <see cref="FakeGitHub"/> (a fake:
/// GitHub cannot be reached from here). The runner template's step is a STAND-IN <c>run.sh</c> written by the step
/// itself (the real image carries the Actions runner): it checks it was called with <c>--jitconfig</c> and a value,
/// prints that value's SHA-256, and prints the value itself too, to prove the log masks it.
/// </summary>
public sealed class GitHubActionsServerFixture : ServerFixture, IAsyncLifetime
{
    public const string Repository = "acme/widgets";
    public static readonly string[] LinuxLabels = ["self-hosted", "linux", "x64"];
    public static readonly string[] SlowLabels = ["self-hosted", "slow"];

    private const string StandInRunSh = """
        cat > run.sh <<'STANDIN'
        #!/bin/bash
        # STAND-IN for the GitHub Actions runner's run.sh (the test machine cannot reach GitHub).
        [ "$1" = --jitconfig ] && [ -n "$2" ] || { echo "stand-in run.sh: called without --jitconfig VALUE"; exit 3; }
        echo "stand-in run.sh: jitconfig sha256 $(printf %s "$2" | sha256sum | cut -c1-64)"
        echo "stand-in run.sh: the value itself: $2"
        STANDIN
        chmod +x run.sh && exec ./run.sh --jitconfig "$GITHUB_JIT_CONFIG"
        """;

    public FakeGitHub GitHub { get; private set; } = null!;
    public Uri Webhook => new(BaseAddress, "/github/webhook");
    public string AdapterDatabase => Path.Combine(DataDirectory, "githubactionsdb.db");

    async Task IAsyncLifetime.InitializeAsync()
    {
        GitHub = await FakeGitHub.StartAsync();
        ExtraArguments.AddRange([
            $"--GitHubActions:AppId={GitHub.AppId}",
            $"--GitHubActions:ApiUrl={GitHub.Url}",
            $"--GitHubActions:Repositories:0={Repository}",
            "--GitHubActions:ReconcileInterval=00:00:01",
            "--GitHubActions:Templates:linux:RunnerTemplate=default",
            $"--GitHubActions:Templates:linux:RunnerGroupId=3",
            $"--GitHubActions:Templates:linux:RunnerCommand={StandInRunSh}",
            // A runner that waits (as a real one does for a job GitHub never sends it).
            "--GitHubActions:Templates:slow:RunnerTemplate=default",
            "--GitHubActions:Templates:slow:RunnerCommand=echo stand-in runner waiting; exec sleep 300",
        ]);
        for (var i = 0; i < LinuxLabels.Length; i++) ExtraArguments.Add($"--GitHubActions:Templates:linux:Labels:{i}={LinuxLabels[i]}");
        for (var i = 0; i < SlowLabels.Length; i++) ExtraArguments.Add($"--GitHubActions:Templates:slow:Labels:{i}={SlowLabels[i]}");
        await InitializeAsync();
        // The App's private key and webhook secret are operator-only secrets in the broker, as an operator puts them.
        foreach (var (name, value) in new[] { ("ECI_GITHUB_APP_PRIVATE_KEY", GitHub.PrivateKeyPem), ("ECI_GITHUB_WEBHOOK_SECRET", GitHub.WebhookSecret) })
        {
            using var put = await SecretsAdmin.PutAsJsonAsync($"/api/v1/admin/secrets/{name}", new { value, repositories = new[] { "**" }, refs = new[] { "**" } });
            Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
        }
    }

    async Task IAsyncLifetime.DisposeAsync()
    {
        await DisposeAsync();
        await GitHub.DisposeAsync();
    }
}

public sealed class GitHubActionsTests(GitHubActionsServerFixture fx) : IClassFixture<GitHubActionsServerFixture>
{
    private static readonly TimeSpan Within = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_queued_job_gets_exactly_one_runner_with_its_labels_despite_duplicated_out_of_order_and_missed_webhooks()
    {
        var github = fx.GitHub;
        // A: one delivery, redelivered with the same id, plus a second delivery of the same event, all at once.
        var a = github.Queue(GitHubActionsServerFixture.Repository, "self-hosted", "linux");
        var delivery = Guid.NewGuid().ToString();
        var answers = await Task.WhenAll(
            github.DeliverAsync(fx.Webhook, "queued", a, delivery), github.DeliverAsync(fx.Webhook, "queued", a, delivery),
            github.DeliverAsync(fx.Webhook, "queued", a), github.DeliverAsync(fx.Webhook, "queued", a, delivery));
        Assert.All(answers, r => Assert.True(r.IsSuccessStatusCode, $"delivery answered {(int)r.StatusCode}"));
        // B: out of order — cancelled before any runner took it, the queued delivery arriving after: never a runner.
        var b = github.Queue(GitHubActionsServerFixture.Repository, "self-hosted", "linux");
        github.Complete(b);
        Assert.Equal(HttpStatusCode.Accepted, (await github.DeliverAsync(fx.Webhook, "completed", b)).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await github.DeliverAsync(fx.Webhook, "queued", b)).StatusCode);
        // C: its webhook never arrives; the reconciler finds it in the queued runs' jobs.
        var c = github.Queue(GitHubActionsServerFixture.Repository, "linux", "x64");
        // D: labels no template covers: not ours.
        var d = github.Queue(GitHubActionsServerFixture.Repository, "self-hosted", "gpu");
        Assert.Equal(HttpStatusCode.Accepted, (await github.DeliverAsync(fx.Webhook, "queued", d)).StatusCode);

        foreach (var job in new[] { a, c })
        {
            var runner = await WaitAsync(() => github.Runners.SingleOrDefault(r => r.Name == $"eci-{job.Id}" && r.Deleted),
                $"runner of workflow job {job.Id} registered, run and removed");
            Assert.Equal(GitHubActionsServerFixture.LinuxLabels, runner.Labels);
            Assert.Equal(3, runner.GroupId);
            Assert.Equal(GitHubActionsServerFixture.Repository, runner.Repository);

            var eciJob = await FindJobAsync(job.Id);
            Assert.Equal("succeeded", eciJob.GetProperty("status").GetString());
            // Not the workflow job's branch: GitHub may hand the runner another queued job with its labels.
            Assert.Equal("refs/eci/github-actions-runner", eciJob.GetProperty("ref").GetString());
            Assert.Contains($"refs/heads/{job.HeadBranch}", eciJob.GetProperty("name").GetString());
            Assert.Equal(job.HeadSha, eciJob.GetProperty("commitSha").GetString());
            Assert.Equal($"github-app:{github.AppId}", eciJob.GetProperty("submittedBy").GetString());
            var id = eciJob.GetProperty("id").GetGuid();
            var log = await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/logs");
            // The stand-in got exactly the JIT config GitHub issued for this runner; the log has it masked.
            Assert.Contains($"stand-in run.sh: jitconfig sha256 {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(runner.JitConfig)))}", log);
            Assert.Contains("stand-in run.sh: the value itself: ***", log);
            await AssertNowhereAsync(runner.JitConfig, id);
        }
        // One JIT config per workflow job, ever: no second generate-jitconfig, no second EphemeralCI job.
        Assert.Single(github.Runners, r => r.Name == $"eci-{a.Id}");
        Assert.Single(github.Runners, r => r.Name == $"eci-{c.Id}");
        Assert.DoesNotContain(github.Runners, r => r.Name == $"eci-{b.Id}" || r.Name == $"eci-{d.Id}");
        Assert.Single(await JobsNamedAsync(a.Id));
        Assert.Empty(await JobsNamedAsync(b.Id));
        Assert.Equal(0, github.RefusedCalls);
        // The adapter's start and work log nothing at warning or above (its SQLite migrations included).
        var bad = fx.Output.Split('\n').Select((l, i) => (l, i)).Where(x => x.l.StartsWith("warn:") || x.l.StartsWith("fail:") || x.l.StartsWith("crit:"))
            .Select(x => string.Join('\n', fx.Output.Split('\n').Skip(x.i).Take(3))).ToList();
        Assert.True(bad.Count == 0, string.Join("\n---\n", bad));
    }

    [Fact]
    public async Task A_delivery_with_a_bad_or_missing_signature_is_refused_401_and_nothing_is_stored()
    {
        var github = fx.GitHub;
        var job = github.Unlisted(GitHubActionsServerFixture.Repository, "self-hosted", "linux");
        var delivery = Guid.NewGuid().ToString();
        var forged = "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData("not-the-secret"u8, "{}"u8));
        foreach (var signature in new[] { forged, "sha256=zz", "" })
        {
            using var answer = await github.DeliverAsync(fx.Webhook, "queued", job, delivery, signature);
            Assert.Equal(HttpStatusCode.Unauthorized, answer.StatusCode);
            Assert.Equal("application/problem+json", answer.Content.Headers.ContentType?.MediaType);
        }
        await using var db = new SqliteConnection($"Data Source={fx.AdapterDatabase};Mode=ReadOnly");
        await db.OpenAsync();
        Assert.Equal(0L, await ScalarAsync(db, "select count(*) from webhook_deliveries where id = $p", delivery));
        Assert.Equal(0L, await ScalarAsync(db, "select count(*) from workflow_jobs where id = $p", job.Id));
        Assert.DoesNotContain(github.Runners, r => r.Name == $"eci-{job.Id}");
    }

    [Fact]
    public async Task A_workflow_job_cancelled_before_its_runner_got_it_has_the_runner_removed_and_the_job_cancelled()
    {
        var github = fx.GitHub;
        var job = github.Queue(GitHubActionsServerFixture.Repository, "self-hosted", "slow");
        Assert.Equal(HttpStatusCode.Accepted, (await github.DeliverAsync(fx.Webhook, "queued", job)).StatusCode);
        var runner = await WaitAsync(() => github.Runners.SingleOrDefault(r => r.Name == $"eci-{job.Id}"), "runner registered");
        var eciJobId = (await WaitAsync(async () => (await JobsNamedAsync(job.Id)).Cast<JsonElement?>().SingleOrDefault(), "job submitted"))!.Value
            .GetProperty("id").GetGuid();
        await fx.Intake.WaitForEventAsync(eciJobId, "runner.started", Within);

        github.Complete(job); // cancelled in GitHub; no runner ever took it
        Assert.Equal(HttpStatusCode.Accepted, (await github.DeliverAsync(fx.Webhook, "completed", job)).StatusCode);

        await WaitAsync(() => runner.Deleted ? runner : null, "runner removed from GitHub");
        var ended = await fx.Intake.WaitForTerminalAsync(eciJobId, Within);
        Assert.Equal("cancelled", ended.GetProperty("status").GetString());
        await AssertNowhereAsync(runner.JitConfig, eciJobId);
    }

    /// <summary>The JIT config is in no API answer about the job and in nothing the server logged.</summary>
    private async Task AssertNowhereAsync(string jit, Guid jobId)
    {
        foreach (var path in new[] { $"/api/v1/jobs/{jobId}", $"/api/v1/jobs/{jobId}/events", $"/api/v1/jobs/{jobId}/logs", "/api/v1/jobs?pageSize=100" })
        {
            Assert.DoesNotContain(jit, await fx.Intake.GetStringAsync(path));
        }
        Assert.DoesNotContain(jit, fx.Output);
        Assert.Contains($"runner eci-", fx.Output); // the adapter did log (its lines are there to be searched)
    }

    private async Task<List<JsonElement>> JobsNamedAsync(long workflowJobId)
    {
        var page = await fx.Intake.GetFromJsonAsync<JsonElement>($"/api/v1/jobs?repository={GitHubActionsServerFixture.Repository}&pageSize=100");
        return page.GetProperty("items").EnumerateArray()
            .Where(j => j.GetProperty("name").GetString()?.StartsWith($"GitHub Actions runner for workflow job {workflowJobId} ", StringComparison.Ordinal) == true).ToList();
    }

    private async Task<JsonElement> FindJobAsync(long workflowJobId)
    {
        var jobs = await JobsNamedAsync(workflowJobId);
        Assert.True(jobs.Count == 1, $"{jobs.Count} jobs for workflow job {workflowJobId}; the server said:\n{string.Join('\n', fx.Output.Split('\n').Where(l => l.Contains("orkflow job")))}");
        var job = jobs[0];
        return await fx.Intake.WaitForTerminalAsync(job.GetProperty("id").GetGuid(), Within);
    }

    private static Task<T> WaitAsync<T>(Func<T?> probe, string what) where T : class => WaitAsync(() => Task.FromResult(probe()), what);

    private static async Task<T> WaitAsync<T>(Func<Task<T?>> probe, string what)
    {
        var deadline = DateTime.UtcNow + Within;
        while (true)
        {
            if (await probe() is { } found) return found;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"not seen within {Within}: {what}");
            await Task.Delay(200);
        }
    }

    private static async Task<long> ScalarAsync(SqliteConnection db, string sql, object value)
    {
        await using var command = db.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$p", value);
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
