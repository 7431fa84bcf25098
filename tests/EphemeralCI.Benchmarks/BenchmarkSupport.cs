using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace EphemeralCI.Benchmarks;

public interface IBenchmark
{
    /// <summary>Command-line name, and the id of its section in docs/benchmarks.md.</summary>
    string Name { get; }
    /// <summary>Runs and returns the markdown section (title, set-up, table).</summary>
    Task<string> RunAsync(BenchmarkOptions options);
}

public sealed record BenchmarkOptions(int Count, int Concurrency, string OutputPath, int Minutes = 10)
{
    public static BenchmarkOptions Parse(string[] args)
    {
        string? Value(string flag) => args.SkipWhile(a => a != flag).Skip(1).FirstOrDefault();
        return new BenchmarkOptions(
            int.TryParse(Value("--count"), out var n) && n > 0 ? n : 500,
            int.TryParse(Value("--concurrency"), out var c) && c > 0 ? c : 8,
            Value("--out") ?? Path.Combine(RepositoryRoot(), "docs", "benchmarks.md"),
            int.TryParse(Value("--minutes"), out var m) && m > 0 ? m : 10);
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Directory.Packages.props"))) return dir.FullName;
        }
        return Directory.GetCurrentDirectory();
    }
}

/// <summary>Latencies of one scenario, in milliseconds, and the throughput of its concurrent run.</summary>
public sealed record ScenarioResult(string Scenario, int Count, double P50, double P99, double Mean, int Concurrency, double PerSecond)
{
    public static async Task<ScenarioResult> MeasureAsync(string scenario, int count, int concurrency, Func<int, Task> operation)
    {
        // Latency: one at a time, so queueing does not inflate it.
        var latencies = new double[count];
        for (var i = 0; i < count; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await operation(i);
            latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(latencies);

        // Throughput: `concurrency` workers sharing the next `count` operations.
        var next = count - 1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < 2 * count) await operation(i);
        }));
        var perSecond = count / clock.Elapsed.TotalSeconds;
        return new ScenarioResult(scenario, count, Percentile(latencies, 0.50), Percentile(latencies, 0.99), latencies.Average(), concurrency, perSecond);
    }

    /// <summary>
    /// Like <see cref="MeasureAsync"/> for several scenarios, but their latency samples are taken
    /// round-robin (one of each in turn), so a change in machine load hits all of them alike and the
    /// comparison with the baseline stays fair. Operation i (0 ≤ i &lt; 2·count) must be valid for each scenario.
    /// </summary>
    public static async Task<List<ScenarioResult>> MeasureInterleavedAsync(
        IReadOnlyList<(string Scenario, Func<int, Task> Operation)> scenarios, int count, int concurrency)
    {
        var latencies = scenarios.Select(_ => new double[count]).ToArray();
        for (var i = 0; i < count; i++)
        {
            for (var s = 0; s < scenarios.Count; s++)
            {
                var start = Stopwatch.GetTimestamp();
                await scenarios[s].Operation(i);
                latencies[s][i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }
        var results = new List<ScenarioResult>();
        for (var s = 0; s < scenarios.Count; s++)
        {
            var next = count - 1;
            var operation = scenarios[s].Operation;
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < 2 * count) await operation(i);
            }));
            var sorted = latencies[s].Order().ToArray();
            results.Add(new ScenarioResult(scenarios[s].Scenario, count, Percentile(sorted, 0.50), Percentile(sorted, 0.99), sorted.Average(),
                concurrency, count / clock.Elapsed.TotalSeconds));
        }
        return results;
    }

    public static double Percentile(double[] sorted, double p) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

    public string Row() => string.Create(CultureInfo.InvariantCulture,
        $"| {Scenario} | {Count} | {P50:F2} | {P99:F2} | {Mean:F2} | {PerSecond:F0} ({Concurrency} clients) |");

    public const string Header = "| scenario | n | p50 ms | p99 ms | mean ms | throughput /s |\n|---|---:|---:|---:|---:|---:|";
}

/// <summary>Replaces (or appends) one benchmark's section of docs/benchmarks.md, leaving the others alone.</summary>
public static class BenchmarkReport
{
    public static void WriteSection(string path, string name, string section)
    {
        var start = $"<!-- benchmark:{name}:start -->";
        var end = $"<!-- benchmark:{name}:end -->";
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var text = File.Exists(path) ? File.ReadAllText(path) : "# Benchmarks\n\nMeasured on demand (`dotnet run -c Release --project tests/EphemeralCI.Benchmarks -- <name>`); every table compares its subject with a baseline measured in the same run.\n";
        var block = $"{start}\n{section.TrimEnd()}\n{end}";
        var from = text.IndexOf(start, StringComparison.Ordinal);
        var to = text.IndexOf(end, StringComparison.Ordinal);
        text = from >= 0 && to > from
            ? text[..from] + block + text[(to + end.Length)..]
            : text.TrimEnd() + "\n\n" + block + "\n";
        File.WriteAllText(path, text, new UTF8Encoding(false));
    }
}
