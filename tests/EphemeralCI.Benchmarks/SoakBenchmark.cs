using EphemeralCI.IntegrationTests.Infrastructure;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Reflection;
using System.Text;
using System.Text.Json;

namespace EphemeralCI.Benchmarks;

/// <summary>
/// What a busy build host does all day, for <c>--minutes</c> (default 10): the all-in-one server, run
/// as its own process exactly as an operator starts it (reconciler ticking every second), kept at its
/// concurrency limit (<c>--concurrency</c>, default 8) by a steady mix of short jobs (1–5 s) and long
/// ones (30–120 s, printing every second). Reported per minute: jobs succeeded / lost / killed / failed,
/// runner start (job.provisioning → runner.started) and teardown (runner.finished → runner.destroyed)
/// percentiles, and the server's RSS — against a baseline taken on the same, idle server just before
/// the soak (the same figures for jobs run one at a time).
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class SoakBenchmark : IBenchmark
{
    public string Name => "soak";
    internal const string AdminKey = "eci_soak_bootstrap_admin_key_0123456789abcdefghijklmnopq";

    private sealed record Sample(DateTimeOffset FinishedAt, string Outcome, double StartMs, double TeardownMs, bool Long);

    public async Task<string> RunAsync(BenchmarkOptions options)
    {
        var minutes = options.Minutes;
        var limit = options.Concurrency;
        var dataDir = Path.Combine(Path.GetTempPath(), "eci-soak-" + Guid.NewGuid().ToString("N")[..8]);
        var address = new Uri($"http://127.0.0.1:{FreePort.Next()}");
        using var server = StartServer(address, dataDir, limit);
        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        try
        {
            await WaitHealthyAsync(http, server);

            // Baseline: the same server idle, one job at a time.
            var baseline = new List<Sample>();
            for (var i = 0; i < 20; i++) baseline.Add(await RunOneAsync(http, Job($"baseline {i}", "echo hello"), longJob: false));

            // The soak: `limit + 4` clients each keep one job in flight, so the limit is always full and jobs queue behind it.
            var rss = new List<(double Minute, double MiB)>();
            var samples = new List<Sample>();
            var begin = DateTimeOffset.UtcNow;
            var end = begin.AddMinutes(minutes);
            using var stopSampling = new CancellationTokenSource();
            var sampler = Task.Run(async () =>
            {
                while (!stopSampling.IsCancellationRequested)
                {
                    rss.Add(((DateTimeOffset.UtcNow - begin).TotalMinutes, RssMiB(server.Id)));
                    await Task.Delay(TimeSpan.FromSeconds(10), stopSampling.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                }
            });
            await Task.WhenAll(Enumerable.Range(0, limit + 4).Select(async client =>
            {
                var random = new Random(client);
                for (var n = 0; DateTimeOffset.UtcNow < end; n++)
                {
                    var isLong = random.Next(4) == 0;
                    var seconds = isLong ? random.Next(30, 121) : random.Next(1, 6);
                    var script = isLong ? $"for i in $(seq 1 {seconds}); do echo \"tick $i\"; sleep 1; done" : $"echo short; sleep {seconds}";
                    var sample = await RunOneAsync(http, Job($"soak {client}.{n}", script), isLong);
                    lock (samples) samples.Add(sample);
                }
            }));
            await stopSampling.CancelAsync();
            await sampler;
            return Report(minutes, limit, baseline, samples, rss, begin);
        }
        finally
        {
            try { if (!server.HasExited) { server.Kill(entireProcessTree: true); await server.WaitForExitAsync(); } } catch (InvalidOperationException) { }
            try { Directory.Delete(dataDir, recursive: true); } catch (IOException) { }
        }
    }

    private static object Job(string name, string script) => new
    {
        name,
        repository = "acme/soak",
        @ref = "refs/heads/main",
        commitSha = "0123456789abcdef0123456789abcdef01234567",
        runnerTemplate = "default",
        timeoutSeconds = 600,
        steps = new[] { new { name = "work", run = script } },
    };

    private static async Task<Sample> RunOneAsync(HttpClient http, object spec, bool longJob)
    {
        using var submitted = await http.PostAsJsonAsync("/api/v1/jobs", spec);
        if (submitted.StatusCode != HttpStatusCode.Accepted) throw new InvalidOperationException($"submit answered {(int)submitted.StatusCode}: {await submitted.Content.ReadAsStringAsync()}");
        var id = (await submitted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        string status, reason;
        while (true)
        {
            await Task.Delay(longJob ? 2000 : 250);
            var job = await http.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}");
            status = job.GetProperty("status").GetString()!;
            reason = job.TryGetProperty("statusReason", out var r) ? r.ToString() : "";
            if (status is "succeeded" or "failed" or "cancelled" or "timed_out") break;
        }
        // Teardown is recorded after the status: wait for it (bounded) so its time is there to read.
        JsonElement events = default;
        for (var i = 0; i < 100; i++)
        {
            events = await http.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}/events");
            if (Types(events).Contains("runner.destroyed")) break;
            await Task.Delay(100);
        }
        DateTimeOffset? At(string type) => Items(events).Where(e => e.GetProperty("type").GetString() == type)
            .Select(e => (DateTimeOffset?)e.GetProperty("at").GetDateTimeOffset()).FirstOrDefault();
        var outcome = status == "succeeded" ? "succeeded"
            : reason.Contains("killed from outside", StringComparison.Ordinal) ? "killed"
            : reason.Contains("lost", StringComparison.Ordinal) ? "lost"
            : "failed";
        var start = At("runner.started") - At("job.provisioning");
        var teardown = At("runner.destroyed") - At("runner.finished");
        return new Sample(At("runner.destroyed") ?? DateTimeOffset.UtcNow, outcome,
            start?.TotalMilliseconds ?? double.NaN, teardown?.TotalMilliseconds ?? double.NaN, longJob);
    }

    private static IEnumerable<JsonElement> Items(JsonElement timeline) =>
        timeline.ValueKind == JsonValueKind.Array ? timeline.EnumerateArray() : timeline.GetProperty("events").EnumerateArray();

    private static HashSet<string> Types(JsonElement timeline) => Items(timeline).Select(e => e.GetProperty("type").GetString()!).ToHashSet();

    private static string Report(int minutes, int limit, List<Sample> baseline, List<Sample> samples, List<(double Minute, double MiB)> rss, DateTimeOffset begin)
    {
        string F(double v) => double.IsNaN(v) ? "–" : v.ToString("F0", CultureInfo.InvariantCulture);
        string Row(string label, IReadOnlyCollection<Sample> s, double? mib) =>
            $"| {label} | {s.Count} | {s.Count(x => x.Outcome == "succeeded")} | {s.Count(x => x.Outcome == "lost")} | {s.Count(x => x.Outcome == "killed")} | {s.Count(x => x.Outcome == "failed")} | " +
            $"{F(P(s, x => x.StartMs, 0.5))} | {F(P(s, x => x.StartMs, 0.99))} | {F(P(s, x => x.TeardownMs, 0.5))} | {F(P(s, x => x.TeardownMs, 0.99))} | {(mib is { } m ? m.ToString("F0", CultureInfo.InvariantCulture) : "–")} |";

        var sb = new StringBuilder();
        sb.AppendLine("## Soak: the all-in-one server at its concurrency limit");
        sb.AppendLine();
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"`dotnet run -c Release --project tests/EphemeralCI.Benchmarks -- soak [--minutes {minutes}] [--concurrency {limit}]`, run {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on this machine ({Environment.ProcessorCount} cores). ") +
            $"The server runs as its own process with the defaults (reconciler every second, `Provisioner:Limits:PerBackend:local={limit}`); {limit + 4} clients each keep one job in flight " +
            "for the whole time: 3 in 4 short (`sleep 1..5`), 1 in 4 long (30–120 s, a line a second). Start = job.provisioning → runner.started; " +
            "teardown = runner.finished → runner.destroyed (server clock, ms). Rows by the minute a job's runner was destroyed; RSS sampled every 10 s, the row shows the minute's last sample.");
        sb.AppendLine();
        sb.AppendLine("| minute | jobs | succeeded | lost | killed | failed | start p50 | start p99 | teardown p50 | teardown p99 | server RSS MiB |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        sb.AppendLine(Row("baseline (idle, one at a time)", baseline, null));
        var byMinute = samples.GroupBy(s => (int)Math.Floor((s.FinishedAt - begin).TotalMinutes)).OrderBy(g => g.Key);
        foreach (var minute in byMinute)
        {
            var last = rss.Where(r => r.Minute < minute.Key + 1).Select(r => r.MiB).LastOrDefault();
            sb.AppendLine(Row((minute.Key + 1).ToString(CultureInfo.InvariantCulture), minute.ToList(), last));
        }
        sb.AppendLine(Row("whole soak", samples, rss.Count > 0 ? rss[^1].MiB : null));
        sb.AppendLine();
        // Growth: least-squares slope of RSS after the first two minutes (warm-up: JIT, pools, caches).
        var steady = rss.Where(r => r.Minute >= 2).ToList();
        if (steady.Count > 2)
        {
            var mx = steady.Average(r => r.Minute);
            var my = steady.Average(r => r.MiB);
            var slope = steady.Sum(r => (r.Minute - mx) * (r.MiB - my)) / steady.Sum(r => (r.Minute - mx) * (r.Minute - mx));
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"RSS after warm-up (minute 2 on, {steady.Count} samples): {steady.Min(r => r.MiB):F0}–{steady.Max(r => r.MiB):F0} MiB, trend {slope:+0.0;-0.0} MiB/min.");
        }
        return sb.ToString();
    }

    private static double P(IReadOnlyCollection<Sample> samples, Func<Sample, double> value, double p)
    {
        var sorted = samples.Select(value).Where(v => !double.IsNaN(v)).Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
    }

    private static double RssMiB(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            return line is null ? double.NaN : double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
        }
        catch (IOException) { return double.NaN; }
    }

    private static string ServerDll =>
        typeof(SoakBenchmark).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "EphemeralCIServerDll").Value!;

    internal static Process StartServer(Uri address, string dataDir, int limit)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList =
            {
                ServerDll,
                $"--urls={address}",
                $"--EphemeralCI:DataDirectory={dataDir}",
                $"--Intake:BootstrapAdminKey={AdminKey}",
                "--Provisioner:Reconciler:IntervalSeconds=1",
                $"--Provisioner:Limits:PerBackend:local={limit}",
                "--Logging:LogLevel:Default=Warning",
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(ServerDll)!,
        };
        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("ConnectionStrings", StringComparison.OrdinalIgnoreCase)).ToList()) start.Environment.Remove(key);
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        var process = Process.Start(start)!;
        // Drain its output (it logs warnings and errors only) so it never blocks on a full pipe; show it, it matters here.
        process.OutputDataReceived += (_, e) => { if (e.Data is { Length: > 0 } l) Console.Error.WriteLine("server: " + l); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 }) Console.Error.WriteLine("server: " + e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    internal static async Task WaitHealthyAsync(HttpClient http, Process server)
    {
        for (var i = 0; i < 480; i++)
        {
            if (server.HasExited) throw new InvalidOperationException($"the server exited with {server.ExitCode}");
            try
            {
                using var health = await http.GetAsync("/health");
                if (health.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException) { }
            await Task.Delay(250);
        }
        throw new TimeoutException("the server was not healthy within 2 minutes");
    }
}
