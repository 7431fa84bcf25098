using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.JobTokens;
using EphemeralCI.RunnerAgent.Caching;
using Microsoft.Extensions.DependencyInjection;

namespace EphemeralCI.Benchmarks;

/// <summary>
/// A real dependency-heavy job, cold then warm, through the runner agent's own cache path: each run gets a
/// fresh workspace and job token (an ephemeral runner), restores the job's caches with <see cref="JobCaches"/>,
/// runs a real <c>npm ci</c> of CacheJob/package.json (a lockfile of several hundred packages), then saves the
/// caches. The cold run misses and downloads from the npm registry (the baseline); one warm run restores npm's
/// cache folder and installs with <c>--offline</c> (so it can only succeed from what the cache restored), the
/// other restores node_modules and skips the install. The cache is the built cache host, run as its own process on the real services.
/// </summary>
public sealed class CacheJobBenchmark : IBenchmark
{
    public string Name => "cache-job";

    private const string Repository = "acme/webapp";
    private const string Ref = "refs/heads/main";
    private const string NpmCacheFolder = ".npm-cache";

    private sealed record Run(string Name, IReadOnlyList<CacheOutcome> Restores, TimeSpan? Install, IReadOnlyList<CacheOutcome> Saves,
        long NpmCacheBytes, int NpmCacheFiles, long NodeModulesBytes, int NodeModulesFiles)
    {
        public TimeSpan Restore => Restores.Aggregate(TimeSpan.Zero, (t, o) => t + o.Duration);
        public TimeSpan Save => Saves.Aggregate(TimeSpan.Zero, (t, o) => t + o.Duration);
        public TimeSpan Total => Restore + (Install ?? TimeSpan.Zero) + Save;
    }

    public async Task<string> RunAsync(BenchmarkOptions options)
    {
        var project = Path.Combine(AppContext.BaseDirectory, "CacheJob");
        var lockFile = Path.Combine(project, "package-lock.json");
        var lockHash = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(lockFile)))[..16];
        var packages = (await File.ReadAllLinesAsync(lockFile)).Count(l => l.TrimStart().StartsWith("\"node_modules/", StringComparison.Ordinal));
        // The two usual ways to cache a Node project, keyed by the OS and the lockfile's hash: npm's package cache folder
        // (what actions/setup-node does; npm ci still installs, offline), or node_modules itself (the install is skipped on an exact hit).
        var npmCache = new CacheSpec { Key = $"npm-linux-{lockHash}", RestoreKeys = ["npm-linux-"], Paths = [NpmCacheFolder] };
        var nodeModules = new CacheSpec { Key = $"node-modules-linux-{lockHash}", Paths = ["node_modules"] };
        var npmVersion = (await RunNpmAsync(Path.GetTempPath(), ["--version"])).Output.Trim();

        var host = new CacheBenchHost();
        var loadAtStart = CacheBenchHost.LoadAverage();
        var work = Directory.CreateTempSubdirectory("eci-bench-cache-job-");
        try
        {
            await using var app = await host.StartAsync(Path.Combine(work.FullName, "spool"), new Dictionary<string, string?>());
            var cacheAddress = app.Address;
            var tokens = host.Tokens;

            async Task<Run> JobAsync(string name, CacheSpec[] caches, bool warm, bool install)
            {
                Console.WriteLine($"{name} job");
                var workspace = Directory.CreateDirectory(Path.Combine(work.FullName, $"job-{Guid.NewGuid():N}")).FullName;
                File.Copy(Path.Combine(project, "package.json"), Path.Combine(workspace, "package.json"));
                File.Copy(lockFile, Path.Combine(workspace, "package-lock.json"));
                var token = tokens.Issue(Guid.NewGuid(), Repository, Ref, DateTimeOffset.UtcNow.AddHours(1));
                using var client = new CacheServiceClient(new HttpClient { BaseAddress = cacheAddress, Timeout = TimeSpan.FromMinutes(10) }, token);
                var jobCaches = new JobCaches(client, workspace);

                var restores = await jobCaches.RestoreAsync(caches, default);
                foreach (var restore in restores)
                {
                    Console.WriteLine($"  {restore}");
                    var expected = warm ? "hit" : "miss";
                    Expect(restore.Result == expected, $"{name}: the restore of {restore.Key} was '{restore.Result}', not '{expected}' ({restore.Error})");
                }

                TimeSpan? installed = null;
                if (install)
                {
                    // Warm: --offline fails on anything the restored cache lacks, so a pass proves the cache delivered it all.
                    string[] ci = ["ci", "--cache", Path.Combine(workspace, NpmCacheFolder), "--no-audit", "--no-fund", warm ? "--offline" : "--prefer-online"];
                    var clock = Stopwatch.StartNew();
                    var npm = await RunNpmAsync(workspace, ci);
                    installed = clock.Elapsed;
                    Expect(npm.ExitCode == 0, $"{name}: npm {string.Join(' ', ci)} exited {npm.ExitCode}:\n{Tail(npm.Output)}");
                    Console.WriteLine($"  npm ci: {installed.Value.TotalSeconds:F1} s");
                }
                else
                {
                    // No install: the restored tree must load (not timed; the file count is compared with the installs below).
                    var node = await RunAsync("node", workspace, ["-e", "for (const m of ['react', 'express', 'axios', 'webpack', 'jest', 'eslint', 'typescript']) require.resolve(m); require('express'); require('react')"]);
                    Expect(node.ExitCode == 0, $"{name}: the restored node_modules does not load:\n{Tail(node.Output)}");
                }

                var saves = await jobCaches.SaveAsync(caches, default);
                foreach (var save in saves) Console.WriteLine($"  {save}");
                var (cacheBytes, cacheFiles) = SizeOf(Path.Combine(workspace, NpmCacheFolder));
                var (modulesBytes, modulesFiles) = SizeOf(Path.Combine(workspace, "node_modules"));
                return new Run(name, restores, installed, saves, cacheBytes, cacheFiles, modulesBytes, modulesFiles);
            }

            var cold = await JobAsync("cold", [npmCache, nodeModules], warm: false, install: true);
            Expect(cold.Saves.All(s => s.Result == "saved"), $"the cold run did not save its caches: {string.Join("; ", cold.Saves)}");
            var warmNpm = await JobAsync("warm, npm cache", [npmCache], warm: true, install: true);
            var warmModules = await JobAsync("warm, node_modules", [nodeModules], warm: true, install: false);
            Expect(cold.NodeModulesFiles == warmNpm.NodeModulesFiles && cold.NodeModulesFiles == warmModules.NodeModulesFiles,
                $"the installs differ: {cold.NodeModulesFiles}, {warmNpm.NodeModulesFiles} and {warmModules.NodeModulesFiles} files in node_modules");
            return Report([cold, warmNpm, warmModules], packages, npmVersion, loadAtStart, CacheBenchHost.LoadAverage());
        }
        finally
        {
            try { work.Delete(recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static string Report(List<Run> runs, int packages, string npmVersion, string loadAtStart, string loadAtEnd)
    {
        var inv = CultureInfo.InvariantCulture;
        var cold = runs[0];
        var report = new StringBuilder();
        report.AppendLine("## Cache: a dependency-heavy job, cold versus warm");
        report.AppendLine();
        report.AppendLine(string.Create(inv, $"Measured {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores ({System.Runtime.InteropServices.RuntimeInformation.OSDescription}), npm {npmVersion}, the public npm registry over the Internet. ") +
            "The cache is the built `EphemeralCI.Cache.Host` run as its own process (Kestrel on loopback), with real Postgres, Redis and the S3 emulator. " +
            string.Create(inv, $"Machine load average (1 min): {loadAtStart} at start, {loadAtEnd} at the end."));
        report.AppendLine();
        report.AppendLine(string.Create(inv, $"The job: `npm ci` of a web project's lockfile ({packages} packages: express, react, axios, lodash; TypeScript, Babel, ESLint, Jest, webpack, Prettier). ") +
            "Each run is a fresh workspace and job token, through the runner agent's own `JobCaches` (restore before the install, save after: tar + zstd, the v2 protocol). " +
            "Cold (the baseline): both caches miss, `npm ci --prefer-online` downloads from the registry, and both caches are saved. " +
            $"Warm, npm cache: npm's package cache folder (`{NpmCacheFolder}`, key `npm-linux-{{sha256(package-lock.json)}}`, restore key `npm-linux-`, as actions/setup-node caches npm) is restored, " +
            "then `npm ci --offline`, which can only succeed from what the cache restored. Warm, node_modules: `node_modules` itself (key `node-modules-linux-{…}`) is restored " +
            "and the install is skipped on the exact hit (the restored tree is checked by loading some of its packages, not timed, and by its file count). MB = 10^6 bytes; archive bytes are compressed.");
        report.AppendLine();
        report.AppendLine("| run | restore | restore s | npm ci s | save | save s | job s (restore + npm ci + save) | vs cold | archive MB | npm cache MB (files) | node_modules MB (files) |");
        report.AppendLine("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in runs)
        {
            var archive = r.Restores.Concat(r.Saves).GroupBy(o => o.Key).Sum(g => g.Max(o => o.Bytes));
            report.AppendLine(string.Create(inv,
                $"| {r.Name} | {string.Join(", ", r.Restores.Select(o => o.Result))} | {r.Restore.TotalSeconds:F1} | {(r.Install is { } i ? i.TotalSeconds.ToString("F1", inv) : "skipped")} | ") +
                string.Create(inv, $"{string.Join(", ", r.Saves.Select(o => o.Result))} | {r.Save.TotalSeconds:F1} | {r.Total.TotalSeconds:F1} | {r.Total / cold.Total:F2}× | {archive / 1e6:F1} | ") +
                string.Create(inv, $"{r.NpmCacheBytes / 1e6:F1} ({r.NpmCacheFiles}) | {r.NodeModulesBytes / 1e6:F1} ({r.NodeModulesFiles}) |"));
        }
        report.AppendLine();
        report.AppendLine("A warm run restored by its exact key does not save it again (entries are immutable, so the agent skips archiving a folder the cache would refuse).");
        return report.ToString();
    }

    private static Task<(int ExitCode, string Output)> RunNpmAsync(string directory, IReadOnlyList<string> args) => RunAsync("npm", directory, args);

    private static async Task<(int ExitCode, string Output)> RunAsync(string program, string directory, IReadOnlyList<string> args)
    {
        var start = new ProcessStartInfo(program) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["npm_config_update_notifier"] = "false";
        start.Environment["npm_config_loglevel"] = "warn";
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout + await stderr);
    }

    private static (long Bytes, int Files) SizeOf(string directory)
    {
        if (!Directory.Exists(directory)) return (0, 0);
        var files = new DirectoryInfo(directory).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }).ToList();
        return (files.Sum(f => f.Length), files.Count);
    }

    private static string Tail(string text) => text.Length <= 4000 ? text : text[^4000..];

    private static void Expect(bool condition, string failure)
    {
        if (!condition) throw new InvalidOperationException(failure);
    }
}
