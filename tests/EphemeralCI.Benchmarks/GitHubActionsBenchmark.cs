using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Reflection;
using System.Text;
using System.Text.Json;
using EphemeralCI.IntegrationTests.Infrastructure;

namespace EphemeralCI.Benchmarks;

/// <summary>
/// Webhook received → runner process started, through the GitHub Actions adapter of the all-in-one server (its own
/// process, embedded defaults, bubblewrap runners) against <see cref="FakeGitHub"/> (a fake: no GitHub from here),
/// the runner being a STAND-IN <c>run.sh</c> that checks its JIT config and exits. "Runner process started" is the
/// job's <c>step.started</c> (the one step is the runner). Baseline in the same run: the same one-step job submitted
/// straight to the intake (what <c>eci run</c> does) → <c>step.started</c>.
/// </summary>
public sealed class GitHubActionsBenchmark : IBenchmark
{
    public string Name => "github-actions";
    private const string AdminKey = "eci_gha_bench_bootstrap_admin_key_0123456789abcdefghijk";
    private const string Repository = "acme/widgets";
    private const int Burst = 200;
    private const string RunnerCommand = "[ -n \"$GITHUB_JIT_CONFIG\" ] && echo stand-in run.sh started";
    private static readonly string SecretsAdminToken = "gha-bench-secrets-admin-" + Guid.NewGuid().ToString("N");

    public async Task<string> RunAsync(BenchmarkOptions options)
    {
        var sequential = Math.Min(options.Count, 50);
        var limit = options.Concurrency;
        await using var github = await FakeGitHub.StartAsync();
        var dataDir = Path.Combine(Path.GetTempPath(), "eci-gha-bench-" + Guid.NewGuid().ToString("N")[..8]);
        var address = new Uri($"http://127.0.0.1:{FreePort.Next()}");
        var webhook = new Uri(address, "/github/webhook");
        using var server = StartServer(address, dataDir, limit, github);
        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        try
        {
            await ServerProcess.WaitHealthyAsync(http, server);
            using (var secrets = new HttpClient { BaseAddress = address })
            {
                secrets.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", SecretsAdminToken);
                foreach (var (name, value) in new[] { ("ECI_GITHUB_APP_PRIVATE_KEY", github.PrivateKeyPem), ("ECI_GITHUB_WEBHOOK_SECRET", github.WebhookSecret) })
                {
                    using var put = await secrets.PutAsJsonAsync($"/api/v1/admin/secrets/{name}", new { value, repositories = new[] { "**" }, refs = new[] { "**" } });
                    put.EnsureSuccessStatusCode();
                }
            }
            var load = LoadAverage();

            // One at a time, adapter and baseline in turn.
            var adapterOne = new List<double>();
            var baselineOne = new List<double>();
            for (var i = 0; i < sequential; i++)
            {
                adapterOne.Add(await ViaWebhookAsync(http, github, webhook));
                baselineOne.Add(await DirectAsync(http, i));
            }
            // 200 at once: every delivery (or submission) sent together; the runner limit makes the rest queue.
            var begin = Stopwatch.StartNew();
            var adapterBurst = (await Task.WhenAll(Enumerable.Range(0, Burst).Select(_ => ViaWebhookAsync(http, github, webhook)))).ToList();
            var adapterBurstSeconds = begin.Elapsed.TotalSeconds;
            begin.Restart();
            var baselineBurst = (await Task.WhenAll(Enumerable.Range(0, Burst).Select(i => DirectAsync(http, 1000 + i)))).ToList();
            var baselineBurstSeconds = begin.Elapsed.TotalSeconds;
            var runners = github.Runners.Count;
            if (runners != sequential + Burst) throw new InvalidOperationException($"{runners} runners registered for {sequential + Burst} queued jobs");

            var table = new StringBuilder();
            table.AppendLine("| path | n | p50 ms | p99 ms | mean ms |").AppendLine("|---|---:|---:|---:|---:|");
            Row(table, "baseline: one job submitted to the intake → step started, one at a time", baselineOne);
            Row(table, "webhook (`workflow_job` queued) → runner process started, one at a time", adapterOne);
            Row(table, $"baseline: {Burst} jobs submitted at once → each one's step started", baselineBurst);
            Row(table, $"{Burst} webhooks at once → each one's runner process started", adapterBurst);
            return $"""
                ## GitHub Actions adapter: webhook → runner started

                Measured {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores (load average at start {load}), shared with other work. The all-in-one server as its own process (SQLite, in-memory bus, bubblewrap runners, at most {limit} at a time) with its GitHub Actions adapter against `FakeGitHub` on loopback (a fake: App JWT, installation token, generate-jitconfig as GitHub answers them, no network latency to GitHub); the runner is a stand-in `run.sh` command (`{RunnerCommand}`), its start is the job's `step.started`. Between the two: HMAC check, delivery and workflow-job rows, App JWT (cached installation token), generate-jitconfig, the in-process submission. Bursts: {Burst} deliveries in {adapterBurstSeconds:F1} s end to end, {Burst} direct submissions in {baselineBurstSeconds:F1} s; exactly one runner registered per workflow job ({runners} for {sequential + Burst}).

                {table}
                Reading: the gap between each pair is the adapter's cost; in the bursts both wait behind the runner limit, so the p99 is queueing, not the adapter. Real GitHub adds its own round trips (token, generate-jitconfig: typically tens to hundreds of ms each) that this stand-in does not have. The harness itself weighs on the bursts: each of the 200 waits is a client polling the job API every 50 ms (for the adapter also the job list, to find its job), on the same cores as the server.
                """;
        }
        finally
        {
            try { if (!server.HasExited) { server.Kill(entireProcessTree: true); await server.WaitForExitAsync(); } } catch (InvalidOperationException) { }
            try { Directory.Delete(dataDir, recursive: true); } catch (IOException) { }
        }
    }

    private static async Task<double> ViaWebhookAsync(HttpClient http, FakeGitHub github, Uri webhook)
    {
        var job = github.Unlisted(Repository, "self-hosted", "linux");
        var sent = DateTimeOffset.UtcNow;
        using (var answer = await github.DeliverAsync(webhook, "queued", job))
        {
            if (answer.StatusCode != HttpStatusCode.Accepted) throw new InvalidOperationException($"webhook answered {(int)answer.StatusCode}");
        }
        var id = await WaitForJobAsync(http, $"GitHub Actions runner for workflow job {job.Id} ");
        return (await StepStartedAsync(http, id) - sent).TotalMilliseconds;
    }

    private static async Task<double> DirectAsync(HttpClient http, int n)
    {
        var sent = DateTimeOffset.UtcNow;
        using var submitted = await http.PostAsJsonAsync("/api/v1/jobs", new
        {
            name = $"baseline {n}",
            repository = Repository,
            @ref = "refs/heads/main",
            commitSha = "0123456789abcdef0123456789abcdef01234567",
            runnerTemplate = "default",
            checkout = false,
            steps = new[] { new { name = "runner", run = RunnerCommand, env = new Dictionary<string, string> { ["GITHUB_JIT_CONFIG"] = "baseline" } } },
        });
        if (submitted.StatusCode != HttpStatusCode.Accepted) throw new InvalidOperationException($"submit answered {(int)submitted.StatusCode}: {await submitted.Content.ReadAsStringAsync()}");
        var id = (await submitted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        return (await StepStartedAsync(http, id) - sent).TotalMilliseconds;
    }

    private static async Task<Guid> WaitForJobAsync(HttpClient http, string namePrefix)
    {
        for (var i = 0; i < 1200; i++)
        {
            var page = await http.GetFromJsonAsync<JsonElement>($"/api/v1/jobs?repository={Repository}&pageSize=100");
            foreach (var job in page.GetProperty("items").EnumerateArray())
            {
                if (job.GetProperty("name").GetString()?.StartsWith(namePrefix, StringComparison.Ordinal) == true) return job.GetProperty("id").GetGuid();
            }
            await Task.Delay(50);
        }
        throw new TimeoutException($"no job named '{namePrefix}…'");
    }

    /// <summary>The step's start as the agent reported it, once the job is over (so the timeline is complete).</summary>
    private static async Task<DateTimeOffset> StepStartedAsync(HttpClient http, Guid id)
    {
        for (var i = 0; i < 2400; i++)
        {
            var timeline = await http.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}/events");
            var events = timeline.GetProperty("events").EnumerateArray().ToList();
            var started = events.FirstOrDefault(e => e.GetProperty("type").GetString() == "step.started");
            if (started.ValueKind == JsonValueKind.Object) return started.GetProperty("at").GetDateTimeOffset();
            if (events.Any(e => e.GetProperty("type").GetString() is "job.failed" or "job.cancelled" or "job.timed_out"))
            {
                throw new InvalidOperationException($"job {id} ended without a step");
            }
            await Task.Delay(50);
        }
        throw new TimeoutException($"job {id}: no step started");
    }

    private static void Row(StringBuilder table, string name, List<double> ms)
    {
        var sorted = ms.Order().ToArray();
        double P(double p) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
        table.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {sorted.Length} | {P(0.5):F1} | {P(0.99):F1} | {sorted.Average():F1} |"));
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(" / ", File.ReadAllText("/proc/loadavg").Split(' ')[..3]) : "n/a";

    private static Process StartServer(Uri address, string dataDir, int limit, FakeGitHub github) =>
        ServerProcess.Start(address, dataDir, AdminKey,
        [
            $"--SecretsBroker:AdminToken={SecretsAdminToken}",
            $"--Provisioner:Limits:PerBackend:local={limit}",
            $"--GitHubActions:AppId={github.AppId}",
            $"--GitHubActions:ApiUrl={github.Url}",
            $"--GitHubActions:Repositories:0={Repository}",
            "--GitHubActions:ReconcileInterval=00:10:00",
            "--GitHubActions:Templates:linux:RunnerTemplate=default",
            "--GitHubActions:Templates:linux:Labels:0=self-hosted",
            "--GitHubActions:Templates:linux:Labels:1=linux",
            $"--GitHubActions:Templates:linux:RunnerCommand={RunnerCommand}",
        ]);
}
