using System.Diagnostics;
using System.Globalization;
using System.Text;
using EphemeralCI.RunnerAgent.Caching;

namespace EphemeralCI.Benchmarks;

/// <summary>
/// A C project of generated files compiled the way a job's step would compile it with the remote build cache: real
/// gcc and ccache (<c>remote_storage=$ECI_CACHE_URL|layout=bazel</c>) through the runner agent's own loopback endpoint
/// (<see cref="StepCacheEndpoint"/>, a fresh job token per run) in front of the built cache host on the real services.
/// Every run is a fresh workspace with an empty local ccache folder, as a clean runner has. Baseline: plain gcc,
/// no ccache. Cold: ccache, empty remote (every object compiled and stored). Warm: ccache, what the cold run stored.
/// </summary>
public sealed class CcacheJobBenchmark : IBenchmark
{
    public string Name => "ccache-job";

    private const int Files = 200;
    private const string Repository = "acme/c-project";
    private const string Ref = "refs/heads/main";

    private sealed record Run(string Name, TimeSpan Elapsed, IReadOnlyDictionary<string, long> Stats, string ObjectsSha256);

    public async Task<string> RunAsync(BenchmarkOptions options)
    {
        var host = new CacheBenchHost();
        var loadAtStart = CacheBenchHost.LoadAverage();
        var work = Directory.CreateTempSubdirectory("eci-bench-ccache-");
        var salt = Guid.NewGuid().ToString("N"); // nothing an earlier run stored can hit
        var gcc = (await RunAsync("gcc", work.FullName, ["--version"], new Dictionary<string, string>())).Output.Split('\n')[0];
        var ccache = (await RunAsync("ccache", work.FullName, ["--version"], new Dictionary<string, string>())).Output.Split('\n')[0];
        try
        {
            await using var app = await host.StartAsync(Path.Combine(work.FullName, "spool"), new Dictionary<string, string?>());

            async Task<Run> JobAsync(string name, bool useCcache)
            {
                Console.WriteLine($"{name} job");
                var workspace = Directory.CreateDirectory(Path.Combine(work.FullName, $"job-{Guid.NewGuid():N}")).FullName;
                Generate(workspace, salt);
                var token = host.Tokens.Issue(Guid.NewGuid(), Repository, Ref, DateTimeOffset.UtcNow.AddHours(1));
                await using var endpoint = StepCacheEndpoint.Start(new HttpClient { BaseAddress = app.Address }, token);
                var env = new Dictionary<string, string>(endpoint.StepVariables)
                {
                    ["CCACHE_DIR"] = Path.Combine(workspace, ".ccache"),
                    ["CCACHE_REMOTE_STORAGE"] = endpoint.BuildCacheUrl + "|layout=bazel",
                };
                if (useCcache) await RunAsync("ccache", workspace, ["-z"], env);
                var clock = Stopwatch.StartNew();
                var make = await RunAsync("make", workspace, ["-j", Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture), useCcache ? "CC=ccache gcc" : "CC=gcc", "objects"], env);
                var elapsed = clock.Elapsed;
                Expect(make.ExitCode == 0, $"{name}: make exited {make.ExitCode}:\n{make.Output[^Math.Min(make.Output.Length, 4000)..]}");
                var stats = new Dictionary<string, long>();
                if (useCcache)
                {
                    foreach (var line in (await RunAsync("ccache", workspace, ["--print-stats"], env)).Output.Split('\n'))
                    {
                        var parts = line.Split('\t');
                        if (parts.Length == 2 && long.TryParse(parts[1], CultureInfo.InvariantCulture, out var value)) stats[parts[0]] = value;
                    }
                }
                var objects = Directory.GetFiles(Path.Combine(workspace, "obj"), "*.o").Order(StringComparer.Ordinal).ToList();
                Expect(objects.Count == Files, $"{name}: {objects.Count} objects, not {Files}");
                using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
                foreach (var o in objects) hash.AppendData(await File.ReadAllBytesAsync(o));
                Console.WriteLine($"  {elapsed.TotalSeconds:F1} s, remote hits {stats.GetValueOrDefault("remote_storage_hit")}, writes {stats.GetValueOrDefault("remote_storage_write")}");
                return new Run(name, elapsed, stats, Convert.ToHexStringLower(hash.GetCurrentHash()));
            }

            var plain = await JobAsync("plain gcc (baseline)", useCcache: false);
            var cold = await JobAsync("ccache, cold remote", useCcache: true);
            var warm = await JobAsync("ccache, warm remote", useCcache: true);
            Expect(cold.Stats.GetValueOrDefault("remote_storage_write") >= Files, $"the cold run stored {cold.Stats.GetValueOrDefault("remote_storage_write")} entries");
            Expect(warm.Stats.GetValueOrDefault("remote_storage_hit") >= Files * 9 / 10, $"the warm run hit {warm.Stats.GetValueOrDefault("remote_storage_hit")} of {Files}");
            Expect(plain.ObjectsSha256 == warm.ObjectsSha256 && cold.ObjectsSha256 == warm.ObjectsSha256, "the objects differ between runs");
            return Report([plain, cold, warm], gcc, ccache, loadAtStart, CacheBenchHost.LoadAverage());
        }
        finally
        {
            try { work.Delete(recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>
    /// <see cref="Files"/> translation units of a few hundred lines each (loops the optimiser works on, a few system
    /// headers), so one compile costs what a real one does; the salt makes every benchmark run's objects new.
    /// </summary>
    private static void Generate(string workspace, string salt)
    {
        var src = Directory.CreateDirectory(Path.Combine(workspace, "src")).FullName;
        for (var i = 1; i <= Files; i++)
        {
            var c = new StringBuilder();
            c.AppendLine(CultureInfo.InvariantCulture, $"/* {salt} */");
            c.AppendLine("#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <math.h>");
            for (var f = 0; f < 24; f++)
            {
                c.AppendLine(CultureInfo.InvariantCulture, $$"""
                    double unit{{i}}_fn{{f}}(const double *v, size_t n, int k) {
                        double acc = {{f}}.5;
                        for (size_t a = 0; a < n; a++) {
                            for (int b = 0; b < k; b++) acc += sin(v[a] * b) / (1.0 + fabs(v[(a + b) % n]));
                            if (acc > 1e6) acc = fmod(acc, 1e3 + {{i}});
                        }
                        char buf[64]; snprintf(buf, sizeof buf, "%f-%d", acc, k);
                        return acc + (double)strlen(buf);
                    }
                    """);
            }
            File.WriteAllText(Path.Combine(src, $"unit{i}.c"), c.ToString());
        }
        File.WriteAllText(Path.Combine(workspace, "Makefile"),
            "SRC := $(wildcard src/*.c)\nOBJ := $(SRC:src/%.c=obj/%.o)\nobjects: $(OBJ)\nobj/%.o: src/%.c\n\t@mkdir -p obj\n\t$(CC) -O2 -c $< -o $@\n");
    }

    private static string Report(List<Run> runs, string gcc, string ccache, string loadAtStart, string loadAtEnd)
    {
        var inv = CultureInfo.InvariantCulture;
        var plain = runs[0];
        var cold = runs[1];
        var report = new StringBuilder();
        report.AppendLine("## Remote build cache: a C project compiled with ccache in a clean runner, cold versus warm");
        report.AppendLine();
        report.AppendLine(string.Create(inv, $"Measured {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores ({System.Runtime.InteropServices.RuntimeInformation.OSDescription}), {gcc}, {ccache}. ") +
            "The cache is the built `EphemeralCI.Cache.Host` as its own process with real Postgres, Redis and the S3 emulator; ccache reaches it through the runner agent's own loopback endpoint " +
            "(`StepCacheEndpoint`, `CCACHE_REMOTE_STORAGE=$ECI_CACHE_URL|layout=bazel`, a fresh job token per run), as a step does; the compile runs on the host, not in a sandbox. " +
            string.Create(inv, $"Machine load average (1 min): {loadAtStart} at start, {loadAtEnd} at the end."));
        report.AppendLine();
        report.AppendLine(string.Create(inv, $"The job: {Files} generated C files (24 functions each, a few system headers), `make -j{Environment.ProcessorCount}` with `-O2`, each run in a fresh workspace with an empty local ccache folder (a clean runner). ") +
            "Baseline: plain gcc. Cold: ccache with an empty remote cache (compiles and stores every object). Warm: ccache against what the cold run stored. All three produce byte-identical objects (checked).");
        report.AppendLine();
        report.AppendLine("| run | compile s | vs plain gcc | vs cold | remote hits | remote misses | remote writes |");
        report.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in runs)
        {
            report.AppendLine(string.Create(inv,
                $"| {r.Name} | {r.Elapsed.TotalSeconds:F2} | {plain.Elapsed / r.Elapsed:F1}× faster | {cold.Elapsed / r.Elapsed:F1}× faster | ") +
                string.Create(inv, $"{Stat(r, "remote_storage_hit")} | {Stat(r, "remote_storage_miss")} | {Stat(r, "remote_storage_write")} |"));
        }
        return report.ToString();
    }

    private static string Stat(Run run, string name) => run.Stats.Count == 0 ? "–" : run.Stats.GetValueOrDefault(name).ToString(CultureInfo.InvariantCulture);

    private static async Task<(int ExitCode, string Output)> RunAsync(string program, string directory, IReadOnlyList<string> args, IReadOnlyDictionary<string, string> env)
    {
        var start = new ProcessStartInfo(program) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (k, v) in env) start.Environment[k] = v;
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout + await stderr);
    }

    private static void Expect(bool condition, string failure)
    {
        if (!condition) throw new InvalidOperationException(failure);
    }
}
