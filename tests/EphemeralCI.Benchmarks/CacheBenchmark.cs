using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Cache.Storage;
using EphemeralCI.JobTokens;
using EphemeralCI.RunnerAgent.Caching;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Minio;
using Minio.DataModel.Args;

namespace EphemeralCI.Benchmarks;

/// <summary>
/// The dependency cache, the built cache host run as its own process (CacheBenchHost) on real Kestrel
/// (loopback), real Postgres, Redis and the S3 emulator. (1) Lookup latency of the v2 Twirp
/// GetCacheEntryDownloadURL, hit and miss, under an open-loop load at a fixed rate, beside the host's
/// /alive at the same rate. (2) Save and restore of one large archive with the runner agent's own
/// CacheServiceClient, beside a raw Minio PUT/GET of the same bytes on the same S3 server. The lookups run
/// against the module as configured and, as their baseline, against a second instance on the same database
/// with the lookup cache off and the access time written on every hit (the behaviour before the lookup cache).
/// Extra flags: --rate N (requests/s, 500), --seconds N (per lookup scenario, 20), --size-mib N (1024), --rounds N (2),
/// --lookups-only (skip the save/restore part), --transfers-only (skip the lookups), --set Cache:Setting=value (repeatable; e.g. Cache:LookupCacheLifetime=0
/// to measure lookups without the lookup cache, Cache:AccessTouchInterval=0 to write the access time on every hit).
/// </summary>
public sealed class CacheBenchmark : IBenchmark
{
    public string Name => "cache";

    private const string Repository = "acme/widgets";
    private const string Ref = "refs/heads/main";
    private const string SaveRaw = "save: raw S3 PUT (Minio SDK)";
    private const string SaveStreaming = "save: EphemeralCI v2 (reserve, parallel blocks, finalize)";
    private const string RestoreRaw = "restore: raw S3 GET (Minio SDK)";
    private const string RestoreStreaming = "restore: EphemeralCI v2, streaming";
    private const string RestoreRanges = "restore: EphemeralCI v2, parallel ranges";
    private const string RestorePresigned = "restore: EphemeralCI v2, presigned S3";

    public async Task<string> RunAsync(BenchmarkOptions options)
    {
        var args = Environment.GetCommandLineArgs();
        int Flag(string name, int fallback) =>
            int.TryParse(args.SkipWhile(a => a != name).Skip(1).FirstOrDefault(), CultureInfo.InvariantCulture, out var v) && v > 0 ? v : fallback;
        var rate = Flag("--rate", 500);
        var seconds = Flag("--seconds", 20);
        var sizeMiB = Flag("--size-mib", 1024);
        var rounds = Flag("--rounds", 2);
        var lookupsOnly = args.Contains("--lookups-only");
        var transfersOnly = args.Contains("--transfers-only");
        var overrides = args.Zip(args.Skip(1)).Where(p => p.First == "--set" && p.Second.Contains('=', StringComparison.Ordinal))
            .Select(p => p.Second.Split('=', 2)).ToDictionary(kv => kv[0], kv => (string?)kv[1]);

        var host = new CacheBenchHost();
        var (s3, bucket) = (host.S3, host.Bucket);
        var loadAtStart = CacheBenchHost.LoadAverage();
        var work = Directory.CreateTempSubdirectory("eci-bench-cache-");
        try
        {
            await using var app = await host.StartAsync(Path.Combine(work.FullName, "spool"), overrides);
            // The baseline for lookups, in the same run on the same database: a second instance answering every lookup
            // from the database and writing the access time on every hit, as the cache did before the lookup cache.
            await using var uncachedApp = await host.StartAsync(Path.Combine(work.FullName, "spool-uncached"), new Dictionary<string, string?>
            {
                ["Cache:LookupCacheLifetime"] = "00:00:00",
                ["Cache:AccessTouchInterval"] = "00:00:00",
            });
            var baseAddress = app.Address;
            var uncachedAddress = uncachedApp.Address;
            var token = host.Tokens.Issue(Guid.NewGuid(), Repository, Ref, DateTimeOffset.UtcNow.AddHours(2));

            using var agent = new CacheServiceClient(new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromMinutes(30) }, token);

            // An entry to hit: a small archive saved the agent's way.
            var small = Path.Combine(work.FullName, "small.tar.zst");
            await File.WriteAllBytesAsync(small, RandomNumberGenerator.GetBytes(64 * 1024));
            if (!await agent.SaveAsync("bench-hit", "v1", small, Sha256Hex(small), default)) throw new InvalidOperationException("could not save the entry to hit");
            // And 64 more, hit in turn: the same work as a hit on one entry without every request touching the same row.
            const int spread = 64;
            for (var e = 0; e < spread; e++)
            {
                if (!await agent.SaveAsync($"bench-hit-{e}", "v1", small, Sha256Hex(small), default)) throw new InvalidOperationException("could not save an entry to hit");
            }
            var nextSpread = 0;

            // ---- (1) lookup latency, open loop ----
            using var loadClient = new HttpClient(new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) }) { BaseAddress = baseAddress };
            using var uncachedClient = new HttpClient(new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) }) { BaseAddress = uncachedAddress };
            Func<Task> alive = async () =>
            {
                using var response = await loadClient.GetAsync("alive");
                Expect(response.IsSuccessStatusCode, $"/alive: HTTP {(int)response.StatusCode}");
                await response.Content.ReadAsByteArrayAsync();
            };
            Func<Task> Lookup(string key, bool expectHit, HttpClient? client = null) => async () =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL")
                {
                    Content = JsonContent.Create(new { key, restore_keys = Array.Empty<string>(), version = "v1" }),
                };
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                using var response = await (client ?? loadClient).SendAsync(request);
                Expect(response.IsSuccessStatusCode, $"lookup: HTTP {(int)response.StatusCode}");
                var body = await response.Content.ReadAsStringAsync();
                Expect(body.Contains("\"ok\":true", StringComparison.Ordinal) == expectHit, $"lookup of {key}: unexpected answer {body}");
            };
            // What issue 17's record of every answer adds to a lookup: the same INSERT the cache makes before it answers,
            // made here through the module's own CacheUseLog on the same database (the lookups above each include one).
            var recordOptions = new DbContextOptionsBuilder<CacheDbContext>().UseNpgsql(host.Database).UseSnakeCaseNamingConvention().Options;
            var recordedJob = new JobTokenClaims(Guid.NewGuid(), Repository, Ref, "bench", DateTimeOffset.UtcNow.AddHours(2));
            Func<Task> record = async () =>
            {
                await using var db = new CacheDbContext(recordOptions);
                await new CacheUseLog(db, TimeProvider.System).RecordRestoreAsync(recordedJob, CacheUseLog.ActionsV2, "bench-hit", "v1", null, default);
            };
            (string Name, Func<Task> Op)[] scenarios =
            [
                ("baseline: GET /alive", alive),
                ("GetCacheEntryDownloadURL, hit", Lookup("bench-hit", true)),
                ("GetCacheEntryDownloadURL, miss", Lookup("bench-missing", false)),
                ("the use record alone: one INSERT into cache_uses (what each lookup above writes before it answers)", record),
                ($"GetCacheEntryDownloadURL, hit, {spread} entries in turn", () => Lookup($"bench-hit-{Interlocked.Increment(ref nextSpread) % spread}", true)()),
                ("baseline: hit, database only, access written every hit (as before)", Lookup("bench-hit", true, uncachedClient)),
                ("baseline: miss, database only", Lookup("bench-missing", false, uncachedClient)),
            ];
            if (transfersOnly) scenarios = [];
            foreach (var (name, op) in scenarios)
            {
                Console.WriteLine($"warm-up: {name}");
                await OpenLoop.RunAsync(op, rate, TimeSpan.FromSeconds(2));
            }
            // Two halves per scenario, in turn, so a change in machine load hits all of them alike.
            var lookups = scenarios.Select(s => new List<OpenLoop.Result>()).ToArray();
            for (var half = 0; half < 2; half++)
            {
                for (var s = 0; s < scenarios.Length; s++)
                {
                    Console.WriteLine($"measuring: {scenarios[s].Name} ({half + 1}/2)");
                    lookups[s].Add(await OpenLoop.RunAsync(scenarios[s].Op, rate, TimeSpan.FromSeconds(seconds / 2.0)));
                }
            }
            var loadAfterLookups = CacheBenchHost.LoadAverage();
            // Closed loop, for the capacity the open-loop rate is measured against: serial latency, then 8 clients flat out.
            Console.WriteLine("closed loop: capacity");
            var capacity = scenarios.Length == 0 ? [] : await ScenarioResult.MeasureInterleavedAsync(scenarios.Select(s => (s.Name, (Func<int, Task>)(_ => s.Op()))).ToList(), 300, 8);
            if (lookupsOnly)
            {
                return Report(options, rate, seconds, 0, loadAtStart, loadAfterLookups, CacheBenchHost.LoadAverage(), scenarios.Select(s => s.Name).ToArray(), lookups, capacity, [], 0, overrides);
            }

            // ---- (2) save / restore throughput ----
            var size = (long)sizeMiB << 20;
            var archive = Path.Combine(work.FullName, "archive.bin");
            Console.WriteLine($"writing a {sizeMiB} MiB random archive");
            await WriteRandomFileAsync(archive, size);
            var sha = Sha256Hex(archive);
            var warmUpFile = Path.Combine(work.FullName, "warm-up.bin");
            await WriteRandomFileAsync(warmUpFile, 128L << 20); // above the agent's range threshold, so every path runs
            var warmUp = (warmUpFile, 128L << 20, Sha256Hex(warmUpFile));
            var raw = S3Settings.Parse($"{s3};Bucket={bucket}");
            using var rawHttp = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = TimeSpan.FromMinutes(30) };
            using var minio = (MinioClient)new MinioClient()
                .WithEndpoint(raw.Endpoint.Host, raw.Endpoint.Port)
                .WithCredentials(raw.AccessKey, raw.SecretKey)
                .WithSSL(raw.UseSsl)
                .WithRegion(raw.Region)
                .WithHttpClient(rawHttp)
                .Build();
            var restored = Path.Combine(work.FullName, "restored.bin");

            var transfers = new List<(int Round, string Scenario, double Seconds)>();
            async Task Time(int round, long bytes, string scenario, Func<Task> op)
            {
                Console.WriteLine(round == 0 ? $"warm-up: {scenario}" : $"round {round}: {scenario}");
                var start = Stopwatch.GetTimestamp();
                await op();
                var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
                if (round > 0) transfers.Add((round, scenario, elapsed));
                Console.WriteLine($"  {bytes / 1e6 / elapsed:F1} MB/s ({elapsed:F1} s)");
            }
            // Restore variants, each the runner agent's own client: one stream through the cache (hashed and checked by the
            // agent as it writes), parallel ranges through the cache (agent verifies the file), and
            // parallel ranges straight from S3 on the presigned URL the lookup hands out with Cache:DirectDownloads.
            // That one is a third instance on the same database and bucket, started only now, so the lookup figures above stay
            // those of the default configuration.
            await uncachedApp.DisposeAsync();
            await using var directApp = await host.StartAsync(Path.Combine(work.FullName, "spool-direct"), new Dictionary<string, string?>(overrides)
            {
                ["Cache:DirectDownloads"] = "true",
            });
            CacheServiceClient Restorer(int parallelism, bool direct) =>
                new(new HttpClient { BaseAddress = direct ? directApp.Address : baseAddress, Timeout = TimeSpan.FromMinutes(30) }, token) { Parallelism = parallelism, UseDirectDownloads = direct };
            using var streaming = Restorer(1, direct: false);
            using var ranged = Restorer(4, direct: false);
            using var presigned = Restorer(4, direct: true);
            (string Scenario, CacheServiceClient Client)[] restorers =
            [
                (RestoreStreaming, streaming),
                (RestoreRanges, ranged),
                (RestorePresigned, presigned),
            ];
            // Round 0 warms up every path on a smaller archive, untimed: the first large transfer otherwise spends a core
            // JIT-compiling (tier 1) the hot loops of both processes while it is measured.
            for (var round = 0; round <= rounds; round++)
            {
                var (archiveFile, archiveSize, archiveSha) = round == 0 ? warmUp : (archive, size, sha);
                var objectKey = $"raw/{round}/{Guid.NewGuid():N}";
                var key = $"bench-large-{round}";
                // Raw first in odd rounds, EphemeralCI first in even ones.
                var order = round % 2 == 1 ? new[] { "raw", "eci" } : ["eci", "raw"];
                foreach (var who in order)
                {
                    if (who == "raw")
                    {
                        await Time(round, archiveSize, SaveRaw, async () =>
                        {
                            await using var file = File.OpenRead(archiveFile);
                            await minio.PutObjectAsync(new PutObjectArgs().WithBucket(bucket).WithObject(objectKey).WithStreamData(file).WithObjectSize(archiveSize)
                                .WithContentType("application/octet-stream"));
                        });
                    }
                    else
                    {
                        await Time(round, archiveSize, SaveStreaming, async () =>
                            Expect(await agent.SaveAsync(key, "v1", archiveFile, archiveSha, default), "the large entry already existed"));
                    }
                }
                var restores = round % 2 == 1
                    ? new[] { (RestoreRaw, (CacheServiceClient?)null) }.Concat(restorers.Select(r => (r.Scenario, (CacheServiceClient?)r.Client)))
                    : restorers.Select(r => (r.Scenario, (CacheServiceClient?)r.Client)).Concat([(RestoreRaw, null)]);
                foreach (var (scenario, client) in restores)
                {
                    File.Delete(restored);
                    if (client is null)
                    {
                        await Time(round, archiveSize, scenario, async () =>
                        {
                            await using var file = File.Create(restored);
                            await minio.GetObjectAsync(new GetObjectArgs().WithBucket(bucket).WithObject(objectKey).WithCallbackStream((body, ct) => body.CopyToAsync(file, ct)));
                        });
                    }
                    else
                    {
                        await Time(round, archiveSize, scenario, async () =>
                        {
                            var hit = await client.LookupAsync(key, [], "v1", default) ?? throw new InvalidOperationException("the large entry was not found");
                            Expect(scenario != RestorePresigned || hit.DirectUrl is not null, "the lookup handed out no presigned URL");
                            await client.DownloadAsync(hit, restored, default);
                        });
                    }
                    Expect(new FileInfo(restored).Length == archiveSize, $"{scenario}: restored {new FileInfo(restored).Length} of {archiveSize} bytes");
                }
                await minio.RemoveObjectAsync(new RemoveObjectArgs().WithBucket(bucket).WithObject(objectKey));
            }
            // Spot check that both paths gave back the bytes that went in (the last restore).
            Expect(Sha256Hex(restored) == sha, "the last restored file does not hash to the archive");

            return Report(options, rate, seconds, sizeMiB, loadAtStart, loadAfterLookups, CacheBenchHost.LoadAverage(), scenarios.Select(s => s.Name).ToArray(), lookups, capacity, transfers, size, overrides);
        }
        finally
        {
            try { work.Delete(recursive: true); } catch (IOException) { }
        }
    }

    private static string Report(BenchmarkOptions options, int rate, int seconds, int sizeMiB, string loadAtStart, string loadAfterLookups, string loadAtEnd,
        string[] names, List<OpenLoop.Result>[] lookups, List<ScenarioResult> capacity, List<(int Round, string Scenario, double Seconds)> transfers, long size,
        Dictionary<string, string?> overrides)
    {
        _ = options;
        var report = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        report.AppendLine("## Cache: lookup latency under load, large archive save/restore");
        report.AppendLine();
        report.AppendLine(string.Create(inv, $"Measured {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores ({System.Runtime.InteropServices.RuntimeInformation.OSDescription}). ") +
            "The cache is the built `EphemeralCI.Cache.Host` (Release) run as its own process (Kestrel on loopback, log level Warning), " +
            "with real Postgres, Redis and the S3 emulator (s3rver, node) from `eng/services.sh`, all on the same 2 cores as the load generator and the agent's client (the benchmark process, JIT-compiled fully up front as the agent ships ahead-of-time compiled). " +
            $"Machine load average (1 min): {loadAtStart} at start, {loadAfterLookups} after the lookups, {loadAtEnd} at the end." +
            (overrides.Count == 0 ? "" : $" Settings changed from their defaults: {string.Join(", ", overrides.Select(kv => $"`{kv.Key}={kv.Value}`"))}."));
        report.AppendLine();
        if (names.Length > 0) AppendLookups(report, rate, seconds, names, lookups, capacity); // not with --transfers-only
        if (transfers.Count == 0) return report.ToString(); // --lookups-only
        report.AppendLine(string.Create(inv, $"### Save and restore of a {sizeMiB} MiB archive"));
        report.AppendLine();
        report.AppendLine("EphemeralCI: the runner agent's own `CacheServiceClient`. Save: Twirp CreateCacheEntry → Azure Put Block of 32 MiB blocks, 4 at a time, " +
            "to the signed URL (the cache spools each block, hashes it in order and forwards it to S3 as a multipart part in the same pass) → Put Block List → " +
            "FinalizeCacheEntryUpload with the SHA-256 (the cache completes the multipart upload and compares the hash). Restore: GetCacheEntryDownloadURL, then " +
            "*streaming* — one GET of the signed URL (with `EphemeralCI-Client-Verifies`: the agent hashes as it writes and checks before extracting, so the cache does not hash it too; " +
            "a mismatch falls back to the cache's checked GET, which quarantines the entry); " +
            "*ranges* — 32 MiB Range GETs of the signed URL, 4 at a time, written at their offsets and hashed by the agent in file order as they finish; " +
            "*presigned* — the same ranges straight from S3 on the presigned URL the lookup hands out with `Cache:DirectDownloads` (the cache out of the data path), hashed the same way. " +
            "Raw: one Minio SDK PutObject / GetObject of the same bytes on the same s3rver and bucket. Source and destination are files on the same disk; " +
            "the archive's SHA-256 is computed before timing (the agent has it from archiving). MB = 10^6 bytes. Rounds alternate which path goes first, after an untimed warm-up round of every path on a 128 MiB archive. Target: ratio ≥ 0.9.");
        report.AppendLine();
        report.AppendLine("| round | transfer | raw S3 MB/s | EphemeralCI MB/s | ratio (ECI / raw) |");
        report.AppendLine("|---:|---|---:|---:|---:|");
        foreach (var round in transfers.Select(t => t.Round).Distinct())
        {
            double Seconds(string scenario) => transfers.Single(t => t.Round == round && t.Scenario == scenario).Seconds;
            foreach (var (scenario, baseline, label) in new[]
            {
                (SaveStreaming, SaveRaw, "save (parallel blocks → multipart)"),
                (RestoreStreaming, RestoreRaw, "restore, streaming"),
                (RestoreRanges, RestoreRaw, "restore, parallel ranges"),
                (RestorePresigned, RestoreRaw, "restore, presigned S3 (ranges)"),
            })
            {
                var (rawSeconds, eciSeconds) = (Seconds(baseline), Seconds(scenario));
                report.AppendLine(string.Create(inv, $"| {round} | {label} | {size / 1e6 / rawSeconds:F1} | {size / 1e6 / eciSeconds:F1} | {rawSeconds / eciSeconds:F2} |"));
            }
        }
        return report.ToString();
    }

    private static void AppendLookups(StringBuilder report, int rate, int seconds, string[] names, List<OpenLoop.Result>[] lookups, List<ScenarioResult> capacity)
    {
        var inv = CultureInfo.InvariantCulture;
        report.AppendLine(string.Create(inv, $"### Lookup latency, open loop at {rate} requests/s"));
        report.AppendLine();
        report.AppendLine(string.Create(inv, $"Requests are dispatched on a fixed schedule ({rate}/s) whatever the responses do (no waiting for earlier ones, so no coordinated omission), " +
            $"{seconds} s per scenario in two halves taken in turn with the other scenarios, after a 2 s warm-up each. One job token for all lookups (as a job reuses its token). ") +
            "Latency is from dispatch to the whole response read. 'max dispatch lag' is how late the sender got behind its schedule (if large, the rate was not really offered). " +
            "The 'database only' baselines are a second instance of the module on the same database with `Cache:LookupCacheLifetime=0` and `Cache:AccessTouchInterval=0` " +
            "(every lookup queries Postgres, every hit writes the entry's access time: the behaviour before the lookup cache). Target: p99 ≤ 5 ms.");
        report.AppendLine();
        report.AppendLine("| scenario | n | achieved /s | p50 ms | p95 ms | p99 ms | max ms | max in flight | max dispatch lag ms |");
        report.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (var s = 0; s < names.Length; s++)
        {
            var all = lookups[s].SelectMany(r => r.Latencies).Order().ToArray();
            var n = all.Length;
            var achieved = n / lookups[s].Sum(r => r.WallSeconds);
            report.AppendLine(string.Create(inv,
                $"| {names[s]} | {n} | {achieved:F0} | {Percentile(all, 0.50):F2} | {Percentile(all, 0.95):F2} | {Percentile(all, 0.99):F2} | {all[^1]:F1} | {lookups[s].Max(r => r.MaxInFlight)} | {lookups[s].Max(r => r.MaxDispatchLagMs):F1} |"));
        }
        report.AppendLine();
        report.AppendLine("Capacity (closed loop, after the open-loop runs): latency one request at a time, then throughput with 8 clients flat out.");
        report.AppendLine();
        report.AppendLine(ScenarioResult.Header);
        foreach (var r in capacity) report.AppendLine(r.Row());
        report.AppendLine();
    }

    private static double Percentile(double[] sorted, double p) => sorted[Math.Min(sorted.Length - 1, Math.Max(0, (int)Math.Ceiling(p * sorted.Length) - 1))];

    private static void Expect(bool condition, string failure)
    {
        if (!condition) throw new InvalidOperationException(failure);
    }

    private static string Sha256Hex(string path)
    {
        using var file = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(file));
    }

    private static async Task WriteRandomFileAsync(string path, long size)
    {
        // Random bytes: nothing on the way can compress them.
        var buffer = new byte[4 << 20];
        await using var file = File.Create(path);
        for (long written = 0; written < size; written += buffer.Length)
        {
            RandomNumberGenerator.Fill(buffer);
            await file.WriteAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, size - written)));
        }
    }
}

/// <summary>
/// Open-loop load: request i is dispatched at start + i/rate whether or not earlier ones have answered.
/// A dedicated thread wakes about every millisecond and dispatches everything that is due, so the
/// sender does not spin a core the server needs; each latency runs from its own dispatch.
/// </summary>
internal static class OpenLoop
{
    public sealed record Result(double[] Latencies, double WallSeconds, int MaxInFlight, double MaxDispatchLagMs);

    public static async Task<Result> RunAsync(Func<Task> operation, int rate, TimeSpan duration)
    {
        var count = (int)(rate * duration.TotalSeconds);
        var latencies = new double[count];
        var tasks = new Task[count];
        var inFlight = 0;
        var maxInFlight = 0;
        var maxLag = 0.0;
        var interval = Stopwatch.Frequency / (double)rate;
        var start = Stopwatch.GetTimestamp();

        async Task One(int i, long dispatched)
        {
            var now = Interlocked.Increment(ref inFlight);
            int seen;
            while (now > (seen = Volatile.Read(ref maxInFlight)) && Interlocked.CompareExchange(ref maxInFlight, now, seen) != seen) { }
            try
            {
                await operation();
            }
            finally
            {
                latencies[i] = Stopwatch.GetElapsedTime(dispatched).TotalMilliseconds;
                Interlocked.Decrement(ref inFlight);
            }
        }

        var sender = new Thread(() =>
        {
            for (var i = 0; i < count;)
            {
                var now = Stopwatch.GetTimestamp();
                var due = start + (long)(i * interval);
                if (now < due)
                {
                    Thread.Sleep(1);
                    continue;
                }
                for (; i < count && start + (long)(i * interval) <= now; i++)
                {
                    var lag = (now - (start + (long)(i * interval))) * 1000.0 / Stopwatch.Frequency;
                    if (lag > maxLag) maxLag = lag;
                    // Off the sender thread at once: the request's own synchronous part must not delay the next dispatch.
                    // Latency counts from here, so the thread pool hop is inside it.
                    var index = i;
                    var dispatched = Stopwatch.GetTimestamp();
                    tasks[index] = Task.Run(() => One(index, dispatched));
                }
            }
        }) { IsBackground = true, Name = "open-loop sender" };
        sender.Start();
        await Task.Run(sender.Join);
        // Offered rate: dispatches over the time it took to dispatch them (the tail of answers is not part of it).
        var dispatching = Stopwatch.GetElapsedTime(start).TotalSeconds;
        await Task.WhenAll(tasks);
        return new Result(latencies, dispatching * count / Math.Max(1, count - 1), maxInFlight, maxLag);
    }
}
