using System.Diagnostics;
using System.Globalization;
using Xunit;

namespace EphemeralCI.EndToEndTests.RealWorkloads;

/// <summary>Jobs shaped like the ones users run: minutes long, printing as they go, or idle for a while.</summary>
public static class Workloads
{
    /// <summary>A job that prints one line a second for <paramref name="seconds"/> seconds.</summary>
    public static object Ticking(string name, int seconds) =>
        JobClient.Job(name, seconds + 120, ("tick", $"for i in $(seq 1 {seconds}); do echo \"tick $i of {seconds}\"; sleep 1; done"));

    /// <summary>Waits for every job; each must have succeeded with its whole log (its last tick) kept.</summary>
    public static async Task AssertAllSucceedAsync(ServerFixture server, IReadOnlyList<(Guid Id, int Seconds)> jobs, TimeSpan within)
    {
        // One poller at a time, shortest job first: hundreds of pollers would load the server more than the jobs do.
        var deadline = DateTime.UtcNow + within;
        var results = new List<(Guid Id, int Seconds, string? Status, string Reason, bool Complete)>();
        foreach (var j in jobs.OrderBy(j => j.Seconds))
        {
            var left = deadline - DateTime.UtcNow;
            var job = await server.Intake.WaitForTerminalAsync(j.Id, left > TimeSpan.Zero ? left : TimeSpan.Zero);
            var status = job.GetProperty("status").GetString();
            var reason = job.TryGetProperty("statusReason", out var r) ? r.ToString() : "";
            var log = status == "succeeded" ? await server.Intake.GetStringAsync($"/api/v1/jobs/{j.Id}/logs") : "";
            results.Add((j.Id, j.Seconds, status, reason, log.Contains($"tick {j.Seconds} of {j.Seconds}", StringComparison.Ordinal)));
        }
        var bad = results.Where(r => r.Status != "succeeded" || !r.Complete).ToList();
        if (bad.Count == 0) foreach (var j in jobs) await server.WaitForVerifiedRunnerEndAsync(j.Id);
        // What the server said of each failed job (the runner's own stderr lines included): the reason alone rarely tells why.
        var output = bad.Count == 0 ? [] : server.Output.Split('\n');
        string Said(Guid id) => string.Join('\n', output.Select((l, n) => (l, n)).Where(x => x.l.Contains(id.ToString(), StringComparison.Ordinal))
            .Take(12).Select(x => "      " + x.l.Trim() + (x.n + 1 < output.Length ? " | " + output[x.n + 1].Trim() : "")));
        Assert.True(bad.Count == 0,
            $"{bad.Count} of {jobs.Count} jobs did not succeed with their whole log:\n" +
            string.Join('\n', bad.Select(b => $"  {b.Id} ({b.Seconds} s): {b.Status} {b.Reason} complete={b.Complete}\n{Said(b.Id)}")));
    }

    /// <summary>A live process in a cgroup directory the test makes, standing for a runner nobody recorded.</summary>
    public sealed class PlantedCgroup : IDisposable
    {
        public string Directory { get; }
        public Process Process { get; }

        public PlantedCgroup(string directory)
        {
            Directory = directory;
            System.IO.Directory.CreateDirectory(directory);
            Process = Process.Start(new ProcessStartInfo("sleep", "600") { UseShellExecute = false })!;
            File.WriteAllText(Path.Combine(directory, "cgroup.procs"), Process.Id.ToString(CultureInfo.InvariantCulture));
        }

        public bool Alive
        {
            get { Process.Refresh(); return !Process.HasExited; }
        }

        public void Dispose()
        {
            try { if (!Process.HasExited) Process.Kill(); Process.WaitForExit(5000); } catch (InvalidOperationException) { }
            Process.Dispose();
            for (var i = 0; i < 100 && System.IO.Directory.Exists(Directory); i++)
            {
                try { System.IO.Directory.Delete(Directory); } catch (IOException) { Thread.Sleep(20); }
            }
        }
    }

    public static async Task WaitUntilAsync(Func<bool> condition, TimeSpan within, string what)
    {
        var deadline = DateTime.UtcNow + within;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting for {what}");
            await Task.Delay(200);
        }
    }
}
