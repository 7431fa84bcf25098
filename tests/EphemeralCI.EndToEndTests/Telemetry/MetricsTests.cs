using System.Net.Http.Json;
using Xunit;
using Xunit.Abstractions;

namespace EphemeralCI.EndToEndTests.Telemetry;

/// <summary>A server of its own: the refusal and the cancel below must not land in another test's "no warning" log.</summary>
public sealed class MetricsServerFixture : ServerFixture;

/// <summary>
/// The Prometheus endpoint of the all-in-one server, read as a scrape would (anonymous, loopback) after
/// real jobs: each instrument of docs/telemetry.md that those jobs move is there with its labels.
/// </summary>
public sealed class MetricsTests(MetricsServerFixture server, ITestOutputHelper output) : IClassFixture<MetricsServerFixture>
{
    [Fact]
    public async Task Metrics_after_a_job_carry_its_template_and_outcome()
    {
        // A job that gets a secret, misses a cache and saves it; one refused a secret; one still running at the scrape.
        using (var put = await server.SecretsAdmin.PutAsJsonAsync("/api/v1/admin/secrets/METRICS_TOKEN",
            new { value = "m-" + Guid.NewGuid().ToString("N"), repositories = new[] { "acme/*" }, refs = new[] { "refs/heads/main" } }))
        {
            Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
        }
        object Job(string name, string gitRef, string run) => new
        {
            name, repository = "acme/widgets", @ref = gitRef, commitSha = "0123456789abcdef0123456789abcdef01234567",
            runnerTemplate = "default", secrets = new[] { "METRICS_TOKEN" },
            caches = new[] { new { key = "metrics-" + Guid.NewGuid().ToString("N")[..8], paths = new[] { "out" } } },
            steps = new[] { new { name = "work", run } },
        };
        var job = await server.Intake.SubmitAsync(Job("measured", "refs/heads/main", "mkdir -p out && echo measured > out/x"));
        Assert.Equal("succeeded", (await server.Intake.WaitForTerminalAsync(job)).GetProperty("status").GetString());
        await server.Intake.WaitForEventAsync(job, "runner.destroyed");
        // Not granted on a feature branch (its step runs without it and fails on the missing value).
        var refused = await server.Intake.SubmitAsync(Job("refused", "refs/heads/feature", "test -n \"$METRICS_TOKEN\""));
        Assert.Equal("failed", (await server.Intake.WaitForTerminalAsync(refused)).GetProperty("status").GetString());
        var running = await server.Intake.SubmitAsync(JobClient.Job("still running", null, ("wait", "sleep 60")));
        await server.Intake.WaitForEventAsync(running, "step.started");

        // Anonymous, like a Prometheus scrape on loopback.
        using var scraper = new HttpClient { BaseAddress = server.BaseAddress };
        string metrics = "";
        // The exporter serves a cached collection for a moment; wait until the last update is in it.
        for (var i = 0; i < 60; i++)
        {
            metrics = await scraper.GetStringAsync("/metrics");
            if (metrics.Contains("eci_runners_teardown_latency_seconds_count") && metrics.Contains("eci_secrets_refused_total")
                && metrics.Contains("eci_runners_active{")) break;
            await Task.Delay(250);
        }
        using (var cancel = await server.Intake.PostAsync($"/api/v1/jobs/{running}/cancel", null)) { }
        output.WriteLine(string.Join('\n', metrics.Split('\n').Where(l => l.StartsWith("eci_", StringComparison.Ordinal))));

        AssertSeries(metrics, "eci_jobs_submitted_total", """template="default" """);
        AssertSeries(metrics, "eci_jobs_finished_total", """outcome="succeeded" """, """template="default" """);
        AssertSeries(metrics, "eci_jobs_queue_wait_seconds_bucket", """template="default" """, "le=");
        AssertSeries(metrics, "eci_runners_start_latency_seconds_bucket", """template="default" """, """backend="local" """, "le=");
        AssertSeries(metrics, "eci_runners_teardown_latency_seconds_bucket", """template="default" """, """backend="local" """, "le=");
        AssertSeries(metrics, "eci_outbox_backlog", """module="intake" """);
        AssertSeries(metrics, "eci_outbox_backlog", """module="provisioner" """);
        AssertSeries(metrics, "eci_runners_active", """backend="local" """, """template="default" """);
        AssertSeries(metrics, "eci_secrets_exchanged_total");
        AssertSeries(metrics, "eci_secrets_refused_total", """reason="denied" """);
        AssertSeries(metrics, "eci_cache_misses_total", """protocol="actions-v2" """);
    }

    private static void AssertSeries(string metrics, string name, params string[] labels)
    {
        var found = metrics.Split('\n').Any(l => (l.StartsWith(name + "{", StringComparison.Ordinal) || l.StartsWith(name + " ", StringComparison.Ordinal))
            && labels.All(label => l.Contains(label.TrimEnd(), StringComparison.Ordinal)));
        Assert.True(found, $"no series {name} with {string.Join(", ", labels)} in:\n{metrics}");
    }

}
