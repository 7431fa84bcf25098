using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace EphemeralCI.EndToEndTests;

/// <summary>A fresh all-in-one server of its own: nothing has run on it before this class.</summary>
public sealed class FreshServerFixture : ServerFixture;

/// <summary>
/// Issue 21.1 and 17.4 on the all-in-one server: a clean first start and a burst of jobs log nothing at
/// warning or above (a newcomer's first sight must not be red), nothing tries to call home, and
/// /metrics (on by default in the server) shows the jobs with their labels.
/// </summary>
public sealed partial class CleanRunTests(FreshServerFixture server, ITestOutputHelper output) : IClassFixture<FreshServerFixture>
{
    /// <summary>The issue's 200 (about 40 s on a shared 2-core machine); ECI_E2E_BURST sets another number.</summary>
    private static int Burst => int.TryParse(Environment.GetEnvironmentVariable("ECI_E2E_BURST"), out var n) ? n : 200;

    [Fact]
    public async Task A_fresh_start_and_a_burst_of_jobs_log_no_warning_or_error_and_never_call_home()
    {
        var clock = Stopwatch.StartNew();
        var jobs = await Task.WhenAll(Enumerable.Range(0, Burst).Select(i =>
            server.Intake.SubmitAsync(JobClient.Job($"burst {i}", null, ("hello", $"echo job {i}")))));
        foreach (var job in jobs)
        {
            Assert.Equal("succeeded", (await server.Intake.WaitForTerminalAsync(job, TimeSpan.FromMinutes(5))).GetProperty("status").GetString());
        }
        foreach (var job in jobs) await server.Intake.WaitForEventAsync(job, "runner.destroyed");
        output.WriteLine($"{Burst} jobs in {clock.Elapsed.TotalSeconds:F1} s");

        // The console logger writes "warn:", "fail:" and "crit:" at the start of a record's first line.
        var bad = server.Output.Split('\n').Where(l => LevelAtLeastWarning().IsMatch(l)).ToList();
        Assert.True(bad.Count == 0, $"warnings or errors on a healthy run:\n{server.Output}");
        Assert.DoesNotContain("usage telemetry", server.Output, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Failed executing DbCommand", server.Output);
    }

    [Fact]
    public async Task Metrics_after_a_job_carry_its_template_and_outcome()
    {
        var job = await server.Intake.SubmitAsync(JobClient.Job("measured", null, ("hello", "echo measured")));
        Assert.Equal("succeeded", (await server.Intake.WaitForTerminalAsync(job)).GetProperty("status").GetString());
        await server.Intake.WaitForEventAsync(job, "runner.destroyed");

        // Anonymous, like a Prometheus scrape on loopback.
        using var scraper = new HttpClient { BaseAddress = server.BaseAddress };
        string metrics = "";
        // The exporter serves a cached collection for a moment; wait until the last update is in it.
        for (var i = 0; i < 40; i++)
        {
            metrics = await scraper.GetStringAsync("/metrics");
            if (metrics.Contains("eci_runners_teardown_latency_seconds_count")) break;
            await Task.Delay(250);
        }
        output.WriteLine(string.Join('\n', metrics.Split('\n').Where(l => l.StartsWith("eci_", StringComparison.Ordinal))));

        AssertSeries(metrics, "eci_jobs_submitted_total", """template="default" """);
        AssertSeries(metrics, "eci_jobs_finished_total", """outcome="succeeded" """, """template="default" """);
        AssertSeries(metrics, "eci_jobs_queue_wait_seconds_bucket", """template="default" """, "le=");
        AssertSeries(metrics, "eci_runners_start_latency_seconds_bucket", """template="default" """, "le=");
        AssertSeries(metrics, "eci_runners_teardown_latency_seconds_bucket", """template="default" """, "le=");
        AssertSeries(metrics, "eci_outbox_backlog", """module="intake" """);
        AssertSeries(metrics, "eci_outbox_backlog", """module="provisioner" """);
    }

    private static void AssertSeries(string metrics, string name, params string[] labels)
    {
        var found = metrics.Split('\n').Any(l => l.StartsWith(name + "{", StringComparison.Ordinal)
            && labels.All(label => l.Contains(label.TrimEnd(), StringComparison.Ordinal)));
        Assert.True(found, $"no series {name} with {string.Join(", ", labels)} in:\n{metrics}");
    }

    [GeneratedRegex(@"^\s*(warn|fail|crit):")]
    private static partial Regex LevelAtLeastWarning();
}
