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
/// fresh workspace and job token (an ephemeral runner), restores the job's cache with <see cref="JobCaches"/>,
/// runs a real <c>npm ci</c> of CacheJob/package.json (a lockfile of several hundred packages) with npm's
/// cache folder inside the workspace, then saves the cache. The cold run misses and downloads from the npm
/// registry (the baseline); the warm run hits and installs with <c>--offline</c>, so it can only succeed from
/// what the cache restored. The cache is the module as its host composes it on the real services.
/// </summary>
public sealed class CacheJobBenchmark : IBenchmark
{
    public string Name => "cache-job";

    private const string Repository = "acme/webapp";
    private const string Ref = "refs/heads/main";
    private const string NpmCacheFolder = ".npm-cache";

    private sealed record Run(string Name, CacheOutcome Restore, TimeSpan Install, CacheOutcome Save, long NpmCacheBytes, int NpmCacheFiles, long NodeModulesBytes, int NodeModulesFiles)
    {
        public TimeSpan Total => Restore.Duration + Install + Save.Duration;
    }

    public async Task<string> RunAsync(BenchmarkOptions options)
    {
        var project = Path.Combine(AppContext.BaseDirectory, "CacheJob");
        var lockFile = Path.Combine(project, "package-lock.json");
        var lockHash = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(lockFile)))[..16];
        var packages = (await File.ReadAllLinesAsync(lockFile)).Count(l => l.TrimStart().StartsWith("\"node_modules/", StringComparison.Ordinal));
        // As actions/setup-node caches npm: the package cache folder, keyed by the OS and the lockfile's hash.
        var spec = new CacheSpec { Key = $"npm-linux-{lockHash}", RestoreKeys = ["npm-linux-"], Paths = [NpmCacheFolder] };
        var npmVersion = (await RunNpmAsync(Path.GetTempPath(), ["--version"])).Output.Trim();

        var host = new CacheBenchHost();
        var loadAtStart = CacheBenchHost.LoadAverage();
        var work = Directory.CreateTempSubdirectory("eci-bench-cache-job-");
        try
        {
            await using var app = await host.StartAsync(Path.Combine(work.FullName, "spool"), new Dictionary<string, string?>());
            var cacheAddress = CacheBenchHost.AddressOf(app);
            var tokens = app.Services.GetRequiredService<JobTokenService>();

            var runs = new List<Run>();
            foreach (var name in new[] { "cold", "warm" })
            {
                Console.WriteLine($"{name} job");
                var workspace = Directory.CreateDirectory(Path.Combine(work.FullName, name)).FullName;
                File.Copy(Path.Combine(project, "package.json"), Path.Combine(workspace, "package.json"));
                File.Copy(lockFile, Path.Combine(workspace, "package-lock.json"));
                var token = tokens.Issue(Guid.NewGuid(), Repository, Ref, DateTimeOffset.UtcNow.AddHours(1));
                using var client = new CacheServiceClient(new HttpClient { BaseAddress = cacheAddress, Timeout = TimeSpan.FromMinutes(10) }, token);
                var caches = new JobCaches(client, workspace);

                var restore = (await caches.RestoreAsync([spec], default)).Single();
                Console.WriteLine($"  {restore}");
                var expected = name == "cold" ? "miss" : "hit";
                Expect(restore.Result == expected, $"{name} run: the restore was '{restore.Result}', not '{expected}' ({restore.Error})");

                // Warm: --offline fails on anything the restored cache lacks, so a pass proves the cache delivered it all.
                string[] install = ["ci", "--cache", Path.Combine(workspace, NpmCacheFolder), "--no-audit", "--no-fund", name == "warm" ? "--offline" : "--prefer-online"];
                var clock = Stopwatch.StartNew();
                var npm = await RunNpmAsync(workspace, install);
                var installed = clock.Elapsed;
                Expect(npm.ExitCode == 0, $"{name} run: npm {string.Join(' ', install)} exited {npm.ExitCode}:\n{Tail(npm.Output)}");
                Console.WriteLine($"  npm ci: {installed.TotalSeconds:F1} s");

                var save = (await caches.SaveAsync([spec], default)).Single();
                Console.WriteLine($"  {save}");
                var (cacheBytes, cacheFiles) = SizeOf(Path.Combine(workspace, NpmCacheFolder));
                var (modulesBytes, modulesFiles) = SizeOf(Path.Combine(workspace, "node_modules"));
                runs.Add(new Run(name, restore, installed, save, cacheBytes, cacheFiles, modulesBytes, modulesFiles));
            }
            Expect(runs[0].Save.Result == "saved", $"the cold run did not save its cache: {runs[0].Save}");
            Expect(runs[0].NodeModulesFiles == runs[1].NodeModulesFiles, $"cold and warm installs differ: {runs[0].NodeModulesFiles} vs {runs[1].NodeModulesFiles} files in node_modules");
            return Report(runs, packages, npmVersion, loadAtStart, CacheBenchHost.LoadAverage());
        }
        finally
        {
            try { work.Delete(recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static string Report(List<Run> runs, int packages, string npmVersion, string loadAtStart, string loadAtEnd)
    {
        var inv = CultureInfo.InvariantCulture;
        var (cold, warm) = (runs[0], runs[1]);
        var report = new StringBuilder();
        report.AppendLine("## Cache: a dependency-heavy job, cold versus warm");
        report.AppendLine();
        report.AppendLine(string.Create(inv, $"Measured {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores ({System.Runtime.InteropServices.RuntimeInformation.OSDescription}), npm {npmVersion}, the public npm registry over the Internet. ") +
            "The cache module composed as `EphemeralCI.Cache.Host` composes it on real Kestrel on loopback, with real Postgres, Redis and the S3 emulator. " +
            string.Create(inv, $"Machine load average (1 min): {loadAtStart} at start, {loadAtEnd} at the end."));
        report.AppendLine();
        report.AppendLine(string.Create(inv, $"The job: `npm ci` of a web project's lockfile ({packages} packages: express, react, axios, lodash; TypeScript, Babel, ESLint, Jest, webpack, Prettier), ") +
            $"with npm's cache folder (`{NpmCacheFolder}`) as the job's cache (key `npm-linux-{{sha256(package-lock.json)}}`, restore key `npm-linux-`, as actions/setup-node caches npm). " +
            "Each run is a fresh workspace and job token, through the runner agent's own `JobCaches` (restore before, save after: tar + zstd, the v2 protocol). " +
            "Cold (the baseline): a miss, then `npm ci --prefer-online` from the registry. Warm: a hit, then `npm ci --offline`, which can only succeed from what the cache restored. " +
            "MB = 10^6 bytes; archive bytes are compressed.");
        report.AppendLine();
        report.AppendLine("| run | restore | restore s | npm ci s | save | save s | job s (restore + npm ci + save) | archive MB | npm cache MB (files) | node_modules MB (files) |");
        report.AppendLine("|---|---|---:|---:|---|---:|---:|---:|---:|---:|");
        foreach (var r in runs)
        {
            var archive = Math.Max(r.Restore.Bytes, r.Save.Bytes);
            report.AppendLine(string.Create(inv,
                $"| {r.Name} | {r.Restore.Result} | {r.Restore.Duration.TotalSeconds:F1} | {r.Install.TotalSeconds:F1} | {r.Save.Result} | {r.Save.Duration.TotalSeconds:F1} | {r.Total.TotalSeconds:F1} | {archive / 1e6:F1} | {r.NpmCacheBytes / 1e6:F1} ({r.NpmCacheFiles}) | {r.NodeModulesBytes / 1e6:F1} ({r.NodeModulesFiles}) |"));
        }
        report.AppendLine();
        report.AppendLine(string.Create(inv, $"Warm versus cold: the job takes {warm.Total.TotalSeconds / cold.Total.TotalSeconds:F2}× the cold time ({cold.Total.TotalSeconds - warm.Total.TotalSeconds:F1} s saved); ") +
            string.Create(inv, $"the install step alone {warm.Install.TotalSeconds / cold.Install.TotalSeconds:F2}×. The warm run's save step archives the folder again before the cache answers that the key exists ({warm.Save.Duration.TotalSeconds:F1} s)."));
        return report.ToString();
    }

    private static async Task<(int ExitCode, string Output)> RunNpmAsync(string directory, IReadOnlyList<string> args)
    {
        var start = new ProcessStartInfo("npm") { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["npm_config_update_notifier"] = "false";
        start.Environment["npm_config_loglevel"] = "warn";
        using var process = Process.Start(start) ?? throw new InvalidOperationException("npm did not start");
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
