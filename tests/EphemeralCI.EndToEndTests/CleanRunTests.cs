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
        foreach (var job in jobs) await server.WaitForVerifiedRunnerEndAsync(job);

        // The console logger writes "warn:", "fail:" and "crit:" at the start of a record's first line.
        var bad = server.Output.Split('\n').Where(l => LevelAtLeastWarning().IsMatch(l)).ToList();
        Assert.True(bad.Count == 0, $"warnings or errors on a healthy run:\n{server.Output}");
        Assert.DoesNotContain("usage telemetry", server.Output, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Failed executing DbCommand", server.Output);
    }

    [GeneratedRegex(@"^\s*(warn|fail|crit):")]
    private static partial Regex LevelAtLeastWarning();
}
