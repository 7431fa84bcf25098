using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.JobTokens;
using EphemeralCI.Provisioner;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Scheduling;
using EphemeralCI.Provisioner.Teardown;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace EphemeralCI.Benchmarks;

/// <summary>
/// Trivial jobs (<c>true</c>) through the real provisioner — RabbitMQ, Postgres, cgroups, bubblewrap,
/// the runner agent — with a minimal runner API in process standing in for the intake. Per job:
/// submit (publish RunJob) → the provisioner's receipt (runner row created) → the first step running
/// (the agent's step.started time), and job end (the agent's completion call) → runner gone (row
/// destroyed: processes, cgroup, workspace removed). Cold sandboxes and warm-pool ones are taken in
/// turn. Floors in the same run: bare <c>bwrap … true</c> with the runner's own flags, and the same
/// sandbox running the agent to its first instruction (it exits at once without a token), which is
/// .NET start-up inside the sandbox.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class RunnerStartBenchmark : IBenchmark
{
    public string Name => "runner-start";
    private const string ColdTemplate = "bench-cold";
    private const string WarmTemplate = "bench-warm";
    private const int WarmPoolSize = 4;

    public async Task<string> RunAsync(BenchmarkOptions options)
    {
        var count = options.Count;
        // --concurrency: the provisioner's limit for the burst (default 8).
        var maxConcurrent = options.Concurrency;
        var postgres = Environment.GetEnvironmentVariable("ECI_POSTGRES") ?? throw new InvalidOperationException("ECI_POSTGRES is not set: eval \"$(eng/services.sh env)\"");
        var rabbit = Environment.GetEnvironmentVariable("ECI_RABBITMQ") ?? throw new InvalidOperationException("ECI_RABBITMQ is not set");
        var signingKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        await using var intake = await RunnerApiStandIn.StartAsync(signingKey);
        var workRoot = Path.Combine(Path.GetTempPath(), "eci-bench", Guid.NewGuid().ToString("N")[..8]);

        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:provisionerdb"] = await CreateDatabaseAsync(postgres),
            // A virtual host of its own: no other provisioner on this machine takes our RunJob messages.
            ["ConnectionStrings:rabbitmq"] = await CreateVirtualHostAsync(rabbit),
            ["JobTokens:SigningKey"] = signingKey,
            ["Provisioner:IntakeUrl"] = intake.Address,
            ["Provisioner:LocalSandbox:WorkRoot"] = workRoot,
            ["Provisioner:LocalSandbox:CgroupName"] = "eci-bench-" + Guid.NewGuid().ToString("N")[..8],
            ["Provisioner:Reconciler:IntervalSeconds"] = "0",
            // A burst is queued by the provisioner's own limiter, as in production: 200 agents starting
            // at once on 2 cores would only measure the CPU scheduler.
            ["Provisioner:Limits:PerBackend:local"] = maxConcurrent.ToString(CultureInfo.InvariantCulture),
            [$"RunnerTemplates:{ColdTemplate}:Backend"] = "local",
            [$"RunnerTemplates:{WarmTemplate}:Backend"] = "local",
            [$"RunnerTemplates:{WarmTemplate}:WarmPool"] = WarmPoolSize.ToString(CultureInfo.InvariantCulture),
        });
        // ECI_BENCH_AGENT_DIR: another build of the agent (e.g. ReadyToRun) to compare with the default one.
        if (Environment.GetEnvironmentVariable("ECI_BENCH_AGENT_DIR") is { Length: > 0 } agentDir)
        {
            builder.Configuration["Provisioner:LocalSandbox:AgentDirectory"] = agentDir;
        }
        builder.AddProvisioner();
        using var host = builder.Build();
        await host.StartAsync();
        await host.Services.GetRequiredService<IBusControl>().WaitForHealthStatus(BusHealthStatus.Healthy, TimeSpan.FromSeconds(60));
        var bus = host.Services.GetRequiredService<IBus>();
        var pool = host.Services.GetRequiredService<WarmPool>();
        var sandbox = host.Services.GetRequiredService<LocalSandboxBackend>();
        var sandboxOptions = host.Services.GetRequiredService<IOptions<LocalSandboxOptions>>().Value;
        await using var destroyed = new DestroyedWatcher(host.Services);

        async Task<JobTiming> RunOneAsync(string template)
        {
            var jobId = Guid.NewGuid();
            var job = intake.Register(jobId);
            var submitted = DateTimeOffset.UtcNow;
            await bus.Publish(new RunJob(jobId, template, "bench/app", "main", 600, submitted));
            var row = await destroyed.WaitAsync(jobId);
            if (!job.Completed.Task.IsCompleted)
            {
                throw new InvalidOperationException($"job {jobId} on {template} ended without reporting: {row.Outcome} exit {row.ExitCode} {row.Reason}");
            }
            var completedAt = await job.Completed.Task;
            return new JobTiming(submitted, row.CreatedAt, row.StartedAt!.Value, job.FetchedAt, job.FirstStepAt, completedAt, row.DestroyedAt!.Value);
        }

        async Task WaitForWarmAsync()
        {
            for (var i = 0; i < 2000 && pool.Ready(WarmTemplate).Count < WarmPoolSize; i++) await Task.Delay(10);
        }

        // Warm-up: the first jobs pay JIT and connection set-up in the provisioner.
        for (var i = 0; i < 5; i++) await RunOneAsync(ColdTemplate);
        await WaitForWarmAsync();

        // Latency: one job at a time (no queueing), cold and warm in turn, with the floors beside them.
        var load = File.ReadAllText("/proc/loadavg").Split(' ')[0];
        var cold = new List<JobTiming>();
        var warm = new List<JobTiming>();
        var bwrapTrue = new List<double>();
        var bwrapManaged = new List<double>();
        var bwrapNative = new List<double>();
        var floorArgs = FloorArguments(sandboxOptions, workRoot);
        for (var i = 0; i < count; i++)
        {
            cold.Add(await RunOneAsync(ColdTemplate));
            await WaitForWarmAsync();
            warm.Add(await RunOneAsync(WarmTemplate));
            bwrapTrue.Add(await TimeSandboxAsync(sandboxOptions.BwrapPath, floorArgs.True, workRoot));
            bwrapManaged.Add(await TimeSandboxAsync(sandboxOptions.BwrapPath, floorArgs.Managed, workRoot));
            bwrapNative.Add(await TimeSandboxAsync(sandboxOptions.BwrapPath, floorArgs.Native, workRoot));
        }

        // Throughput: `count` jobs submitted at once per template, until the last runner is gone.
        async Task<double> ThroughputAsync(string template)
        {
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, count).Select(_ => RunOneAsync(template)));
            return count / clock.Elapsed.TotalSeconds;
        }
        var coldRate = await ThroughputAsync(ColdTemplate);
        await WaitForWarmAsync();
        var warmRate = await ThroughputAsync(WarmTemplate);
        var cgroupCost = MeasureCgroupCost(sandbox, count);

        // The teardown check's cost: cold bursts with the check on and off, in turn (the same switch as
        // Provisioner:Teardown:Verify, flipped between bursts), and its own duration per runner.
        var teardownSwitch = host.Services.GetRequiredService<IOptions<TeardownOptions>>().Value;
        var verifier = host.Services.GetServices<ITeardownVerifier>().OfType<LocalTeardownVerifier>().Single();
        var checkedRates = new List<double>();
        var uncheckedRates = new List<double>();
        var checkedTeardown = new List<double>();
        var uncheckedTeardown = new List<double>();
        var args = Environment.GetCommandLineArgs();
        var rounds = int.TryParse(args.SkipWhile(a => a != "--rounds").Skip(1).FirstOrDefault(), CultureInfo.InvariantCulture, out var asked) && asked > 0 ? asked : 4;
        for (var round = 0; round < rounds; round++)
        {
            foreach (var verify in round % 2 == 0 ? new[] { true, false } : [false, true])
            {
                teardownSwitch.Verify = verify;
                var clock = Stopwatch.StartNew();
                var timings = await Task.WhenAll(Enumerable.Range(0, count).Select(_ => RunOneAsync(ColdTemplate)));
                (verify ? checkedRates : uncheckedRates).Add(count / clock.Elapsed.TotalSeconds);
                (verify ? checkedTeardown : uncheckedTeardown).AddRange(timings.Select(t => t.Teardown));
            }
        }
        teardownSwitch.Verify = true;
        // A runner this process made (what every check of the bursts is), and one made before it (adopted after a
        // restart: every process is read in full, the way every check did before).
        var checkAlone = new List<double>();
        var checkAdopted = new List<double>();
        for (var i = 0; i < count; i++)
        {
            var clock = Stopwatch.StartNew();
            await verifier.VerifyAsync(new EphemeralCI.Provisioner.Backends.RunnerRef(Guid.NewGuid(), "runner-bench", null, DateTimeOffset.UtcNow), CancellationToken.None);
            checkAlone.Add(clock.Elapsed.TotalMilliseconds);
            clock.Restart();
            await verifier.VerifyAsync(new EphemeralCI.Provisioner.Backends.RunnerRef(Guid.NewGuid(), "runner-bench", null, DateTimeOffset.UnixEpoch), CancellationToken.None);
            checkAdopted.Add(clock.Elapsed.TotalMilliseconds);
        }
        var (signing, verifying) = MeasureAttestationCost(count);

        await host.StopAsync();
        try { Directory.Delete(workRoot, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }

        var sb = new StringBuilder();
        sb.AppendLine("## Runner start and teardown (local sandbox)");
        sb.AppendLine();
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores, load average at start {load}. The real provisioner module (RabbitMQ, Postgres, per-job cgroups on this machine's hybrid layout, bubblewrap, the runner agent as the provisioner runs it: {(sandboxOptions.AgentHost() is null ? "native, compiled ahead of time" : "managed, on the shared .NET runtime")}) with a minimal runner API in process standing in for the intake (token check, job spec, events). Each job is one step running `true`. Latency: {count} jobs of each kind one at a time, cold and warm in turn, the floors measured between them; throughput: {count} jobs submitted at once. Percentiles in ms."));
        sb.AppendLine();
        sb.AppendLine("| path | n | p50 | p95 | p99 | mean |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|");
        Row(sb, "floor: bare `bwrap … true` (the runner's flags, no cgroup)", bwrapTrue);
        Row(sb, "baseline: `bwrap … dotnet agent.dll` to exit (sandbox + managed agent start-up, as before)", bwrapManaged);
        Row(sb, "`bwrap … native agent` to exit (sandbox + native agent start-up, what jobs run)", bwrapNative);
        Row(sb, "cgroup create + remove (hybrid v1 + v2)", cgroupCost);
        Row(sb, "cold: submit → provisioner receipt", cold.Select(t => t.Receipt));
        Row(sb, "cold: receipt → first step running", cold.Select(t => t.Start));
        Row(sb, "cold: submit → first step running", cold.Select(t => t.SubmitToStart));
        Row(sb, "cold: job end → runner gone", cold.Select(t => t.Teardown));
        Row(sb, "cold, where the start goes: receipt → runner start (claim, limits, JobProvisioning)", cold.Select(t => t.Admission));
        Row(sb, "cold, where the start goes: runner start → agent fetches its job (token, sandbox, agent start-up, first HTTP call)", cold.Select(t => t.ToFetch));
        Row(sb, "cold, where the start goes: job fetched → first step running (agent)", cold.Select(t => t.FetchToStep));
        Row(sb, $"warm (pool of {WarmPoolSize}): receipt → first step running", warm.Select(t => t.Start));
        Row(sb, $"warm (pool of {WarmPoolSize}): submit → first step running", warm.Select(t => t.SubmitToStart));
        Row(sb, $"warm (pool of {WarmPoolSize}): job end → runner gone", warm.Select(t => t.Teardown));
        Row(sb, $"warm, where the start goes: runner start → agent fetches its job", warm.Select(t => t.ToFetch));
        Row(sb, $"warm, where the start goes: job fetched → first step running", warm.Select(t => t.FetchToStep));
        sb.AppendLine();
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Throughput, {count} trivial jobs submitted at once until the last runner is gone, at most {maxConcurrent} runners at a time (`Provisioner:Limits:PerBackend:local`; the rest wait in the limiter's queue): **{coldRate:F1} jobs/s cold**, **{warmRate:F1} jobs/s with the warm pool** (a pool of {WarmPoolSize} drains at once under such a burst; then jobs start cold)."));
        sb.AppendLine();
        sb.AppendLine("### The teardown check and the attestation, per job");
        sb.AppendLine();
        var on = checkedRates.Average();
        var off = uncheckedRates.Average();
        // Each round runs both settings back to back, so the machine's drift (other work, page cache, Postgres
        // autovacuum) touches both alike: the median of the rounds' own ratios is the figure least moved by it.
        var paired = checkedRates.Zip(uncheckedRates, (c, u) => (c - u) / u * 100).Order().ToList();
        var pairedMedian = paired.Count % 2 == 1 ? paired[paired.Count / 2] : (paired[paired.Count / 2 - 1] + paired[paired.Count / 2]) / 2;
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Cold bursts of {count} jobs with the teardown check on and off (`Provisioner:Teardown:Verify`), {rounds} of each in turn, the order flipped every round: **{on:F1} jobs/s with the check** ({string.Join(", ", checkedRates.Select(r => r.ToString("F1", CultureInfo.InvariantCulture)))}), **{off:F1} jobs/s without** ({string.Join(", ", uncheckedRates.Select(r => r.ToString("F1", CultureInfo.InvariantCulture)))}): the check changes throughput by {(on - off) / off * 100:+0.0;-0.0} % (target: at most 5 % fewer jobs/s). Bursts of one setting differ among themselves by up to {Math.Max(Spread(checkedRates), Spread(uncheckedRates)):F0} %: a difference smaller than that is run-to-run noise, not the check. Paired by round (each round's check-on burst against its own check-off burst): median {pairedMedian:+0.0;-0.0} % (rounds: {string.Join(", ", paired.Select(d => d.ToString("+0.0;-0.0", CultureInfo.InvariantCulture)))} %)."));
        sb.AppendLine();
        sb.AppendLine("| path | n | p50 | p95 | p99 | mean |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|");
        Row(sb, "baseline: burst, job end → runner gone, check off", uncheckedTeardown);
        Row(sb, "burst, job end → runner gone, check on", checkedTeardown);
        Row(sb, "the check alone (/proc scan of processes started since the provisioner, cgroup, folders, mounts, netns, veth, nftables via libnftables), one at a time", checkAlone);
        Row(sb, "the check alone for a runner made before this process (every process read in full), one at a time", checkAdopted);
        Row(sb, "attestation: serialize a job statement + DSSE ES256 sign (in the broker)", signing);
        Row(sb, "attestation: verify (DSSE ES256 + statement checks, as `eci jobs verify`)", verifying);
        return sb.ToString();
    }

    /// <summary>(max − min) / mean, in %: how far bursts of one setting differ from each other.</summary>
    private static double Spread(IReadOnlyCollection<double> rates) => rates.Count < 2 ? 0 : (rates.Max() - rates.Min()) / rates.Average() * 100;

    /// <summary>The CPU part of an attestation: the statement as the intake builds it, signed and verified as the broker and `eci` do (no database, no HTTP).</summary>
    private static (List<double> Sign, List<double> Verify) MeasureAttestationCost(int count)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var p = key.ExportParameters(false);
        var jwks = new EphemeralCI.Attestations.JsonWebKeySet([new EphemeralCI.Attestations.JsonWebKey("EC", "P-256",
            System.Buffers.Text.Base64Url.EncodeToString(p.Q.X), System.Buffers.Text.Base64Url.EncodeToString(p.Q.Y), "bench")]);
        var checks = new[] { "processes", "cgroup", "workspace", "control", "job-directory", "overlay", "netns", "veth", "nftables" }
            .Select(n => new TeardownCheck(n, true, "/some/where/" + Guid.NewGuid())).ToList();
        var sign = new List<double>();
        var verify = new List<double>();
        for (var i = 0; i < count; i++)
        {
            var id = Guid.NewGuid();
            var statement = EphemeralCI.Attestations.JobStatement.For(new EphemeralCI.Attestations.JobPredicate(
                new EphemeralCI.Attestations.BuildDefinition(EphemeralCI.Attestations.AttestationFormat.BuildType,
                    new EphemeralCI.Attestations.ExternalParameters("bench/app", "refs/heads/main", new string('a', 40), "bench-cold", null, "bench"),
                    new EphemeralCI.Attestations.InternalParameters(new EphemeralCI.Attestations.Submitter("api-key", "api-key:1", "1"))),
                new EphemeralCI.Attestations.RunDetails(new EphemeralCI.Attestations.Builder("https://ephemeralci.dev/builder/v1", new Dictionary<string, string> { ["ephemeralci"] = "bench" }),
                    new EphemeralCI.Attestations.BuildMetadata(id.ToString(), DateTimeOffset.UtcNow, DateTimeOffset.UtcNow)),
                new EphemeralCI.Attestations.JobRunner($"runner-{id:N}", "local", new EphemeralCI.Attestations.RunnerTemplateRef("bench-cold", "sha256:" + new string('b', 64))),
                new EphemeralCI.Attestations.JobLifecycle(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow),
                new TeardownReport(true, 1, checks),
                [new EphemeralCI.Attestations.IssuedSecret("NPM_TOKEN", 1, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow)],
                new EphemeralCI.Attestations.JobCaches([], [new EphemeralCI.Attestations.CacheUse("deps", "saved", null, "bench/app@refs/heads/main", new string('c', 64), 1024)]),
                new EphemeralCI.Attestations.JobOutcome("succeeded", 0, null)));
            var clock = Stopwatch.StartNew();
            var payload = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(statement, EphemeralCI.Attestations.AttestationFormat.Json);
            var envelope = EphemeralCI.Attestations.Dsse.Sign(EphemeralCI.Attestations.AttestationFormat.PayloadType, payload, key, "bench");
            sign.Add(clock.Elapsed.TotalMilliseconds);
            clock.Restart();
            if (!EphemeralCI.Attestations.AttestationVerifier.Verify(envelope, jwks).Valid) throw new InvalidOperationException("the benchmark's attestation did not verify");
            verify.Add(clock.Elapsed.TotalMilliseconds);
        }
        return (sign, verify);
    }

    private sealed record JobTiming(DateTimeOffset Submitted, DateTimeOffset Received, DateTimeOffset Starting, DateTimeOffset Fetched, DateTimeOffset FirstStep, DateTimeOffset Completed, DateTimeOffset Destroyed)
    {
        public double Admission => (Starting - Received).TotalMilliseconds;
        public double ToFetch => (Fetched - Starting).TotalMilliseconds;
        public double FetchToStep => (FirstStep - Fetched).TotalMilliseconds;
        public double Receipt => (Received - Submitted).TotalMilliseconds;
        public double Start => (FirstStep - Received).TotalMilliseconds;
        public double SubmitToStart => (FirstStep - Submitted).TotalMilliseconds;
        public double Teardown => (Destroyed - Completed).TotalMilliseconds;
    }

    private static void Row(StringBuilder sb, string path, IEnumerable<double> samples)
    {
        var sorted = samples.Order().ToArray();
        double P(double p) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {path} | {sorted.Length} | {P(0.50):F1} | {P(0.95):F1} | {P(0.99):F1} | {sorted.Average():F1} |"));
    }

    /// <summary>
    /// Waits for runners to be destroyed with one query per tick for all jobs in flight: a poll per
    /// job would, in a burst of hundreds, measure the database instead of the provisioner.
    /// </summary>
    private sealed class DestroyedWatcher(IServiceProvider services) : IAsyncDisposable
    {
        private readonly ConcurrentDictionary<Guid, TaskCompletionSource<RunnerRecord>> _waiting = new();
        private readonly CancellationTokenSource _stop = new();
        private Task? _loop;

        public Task<RunnerRecord> WaitAsync(Guid jobId)
        {
            var tcs = _waiting.GetOrAdd(jobId, _ => new TaskCompletionSource<RunnerRecord>(TaskCreationOptions.RunContinuationsAsynchronously));
            _loop ??= Task.Run(LoopAsync);
            return tcs.Task.WaitAsync(TimeSpan.FromMinutes(2));
        }

        private async Task LoopAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                var ids = _waiting.Keys.ToArray();
                if (ids.Length > 0)
                {
                    await using var scope = services.CreateAsyncScope();
                    var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
                    foreach (var row in await db.Runners.AsNoTracking().Where(r => r.DestroyedAt != null && ids.Contains(r.JobId)).ToListAsync())
                    {
                        if (_waiting.TryRemove(row.JobId, out var tcs)) tcs.TrySetResult(row);
                    }
                }
                // The figures come from the rows' own timestamps, so the poll's period only delays noticing;
                // shorter would spend the CPU the jobs need on polling Postgres.
                try { await Task.Delay(20, _stop.Token); } catch (OperationCanceledException) { }
            }
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            if (_loop is not null) await _loop;
        }
    }

    /// <summary>The runner's own bubblewrap arguments (same flags, binds and empty root), running <c>true</c>, and the agent without a token.</summary>
    private static (List<string> True, List<string> Managed, List<string> Native) FloorArguments(LocalSandboxOptions options, string workRoot)
    {
        var id = Guid.NewGuid();
        var dir = Path.Combine(workRoot, "floor-" + id.ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(dir, "workspace"));
        Directory.CreateDirectory(Path.Combine(dir, "control"));
        var layout = new SandboxLayout(id, Path.Combine(dir, "workspace"), Path.Combine(dir, "control"),
            Path.GetFullPath(options.AgentDirectory), LocalSandboxOptions.ResolveDotnet(options.DotnetPath));
        return (
            [.. SandboxCommandBuilder.Build(layout, Path.Exists, p => new FileInfo(p).LinkTarget, ["/usr/bin/true"])],
            [.. SandboxCommandBuilder.Build(layout, Path.Exists, p => new FileInfo(p).LinkTarget)],
            [.. SandboxCommandBuilder.Build(layout with { DotnetPath = null }, Path.Exists, p => new FileInfo(p).LinkTarget)]);
    }

    /// <summary>Started as the backend starts a sandbox: launch files written (filter compiled once per process), a shell, bubblewrap through descriptors.</summary>
    private static async Task<double> TimeSandboxAsync(string bwrapPath, IReadOnlyList<string> bwrapArgs, string workRoot)
    {
        var start = Stopwatch.GetTimestamp();
        var dir = Directory.CreateDirectory(Path.Combine(workRoot, "launch-" + Guid.NewGuid().ToString("N")[..8])).FullName;
        var files = SandboxCommandBuilder.WriteLaunchFiles(dir, bwrapArgs, EphemeralCI.Provisioner.Backends.LocalSandbox.Seccomp.SeccompFilter.For(false));
        var elapsed = await TimeProcessAsync("/bin/sh", SandboxCommandBuilder.JoinCgroupThenExec([], bwrapPath, bwrapArgs, files));
        var total = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        Directory.Delete(dir, recursive: true);
        return Math.Max(elapsed, total);
    }

    private static async Task<double> TimeProcessAsync(string file, IReadOnlyList<string> args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var start = Stopwatch.GetTimestamp();
        using var p = Process.Start(psi)!;
        p.StandardInput.Close(); // the agent finds no token and exits at once
        await p.StandardOutput.ReadToEndAsync();
        await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    private static List<double> MeasureCgroupCost(LocalSandboxBackend sandbox, int count)
    {
        var samples = new List<double>();
        var resources = new RunnerResources();
        for (var i = 0; i < count; i++)
        {
            var id = Guid.NewGuid();
            var start = Stopwatch.GetTimestamp();
            sandbox.JobCgroups.Create(id, resources);
            sandbox.JobCgroups.Remove(id);
            samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        return samples;
    }

    private static async Task<string> CreateVirtualHostAsync(string amqpUrl)
    {
        var management = Environment.GetEnvironmentVariable("ECI_RABBITMQ_MANAGEMENT") ?? throw new InvalidOperationException("ECI_RABBITMQ_MANAGEMENT is not set");
        var vhost = "eci-bench-" + Guid.NewGuid().ToString("N")[..12];
        var amqp = new Uri(amqpUrl);
        var credentials = Uri.UnescapeDataString(amqp.UserInfo);
        using var http = new HttpClient { BaseAddress = new Uri(management) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(credentials)));
        (await http.PutAsync($"/api/vhosts/{vhost}", null)).EnsureSuccessStatusCode();
        (await http.PutAsync($"/api/permissions/{vhost}/{Uri.EscapeDataString(credentials.Split(':')[0])}",
            new StringContent("""{"configure":".*","write":".*","read":".*"}""", Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();
        // Where the intake's queues would be: a sink bound to every message the provisioner publishes.
        // The outbox publishes mandatory, so with no queue bound each message would be returned and
        // retried on every wake-up, and the benchmark would measure that instead of a real deployment.
        StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
        (await http.PutAsync($"/api/queues/{vhost}/bench-sink", Json("""{"durable":false,"arguments":{"x-max-length":1}}"""))).EnsureSuccessStatusCode();
        foreach (var type in new[] { typeof(JobProvisioning), typeof(RunnerWaiting), typeof(RunnerStarted), typeof(RunnerFinished), typeof(RunnerDestroyed) })
        {
            // MassTransit's exchange for a message type: fanout, durable, named namespace:type.
            var exchange = Uri.EscapeDataString($"{type.Namespace}:{type.Name}");
            (await http.PutAsync($"/api/exchanges/{vhost}/{exchange}", Json("""{"type":"fanout","durable":true}"""))).EnsureSuccessStatusCode();
            (await http.PostAsync($"/api/bindings/{vhost}/e/{exchange}/q/bench-sink", Json("{}"))).EnsureSuccessStatusCode();
        }
        return new UriBuilder(amqp) { Path = "/" + vhost }.Uri.ToString();
    }

    private static async Task<string> CreateDatabaseAsync(string server)
    {
        var name = "bench_runner_" + Guid.NewGuid().ToString("N")[..8];
        await using var connection = new NpgsqlConnection(server);
        await connection.OpenAsync();
        await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
        await create.ExecuteNonQueryAsync();
        return new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
    }
}

/// <summary>The four runner routes, enough for the agent: token check, the job (one step, <c>true</c>), events, logs, completion — with the times the benchmark needs.</summary>
internal sealed class RunnerApiStandIn : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<Guid, BenchJob> _jobs = new();

    private RunnerApiStandIn(WebApplication app) => _app = app;

    public string Address => _app.Urls.First();

    public BenchJob Register(Guid jobId) => _jobs[jobId] = new BenchJob();

    public static async Task<RunnerApiStandIn> StartAsync(string signingKey)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Configuration["JobTokens:SigningKey"] = signingKey;
        builder.AddJobTokens();
        var app = builder.Build();
        var self = new RunnerApiStandIn(app);

        async Task<(Guid, BenchJob)?> JobOf(HttpContext ctx, JobTokenService tokens)
        {
            var token = JobTokenAuthenticationHandler.BearerToken(ctx.Request.Headers.Authorization.ToString());
            var claims = token is null ? null : await tokens.ValidateAsync(token);
            return claims is not null && self._jobs.TryGetValue(claims.JobId, out var job) ? (claims.JobId, job) : null;
        }

        app.MapGet(RunnerApiRoutes.Job, async (HttpContext ctx, JobTokenService tokens) =>
            await JobOf(ctx, tokens) is var (id, job) && job.Fetched()
                ? Results.Ok(new RunnerJob(id, new JobSpec { Name = "bench", Repository = "bench/app", Ref = "main", Steps = [new StepSpec { Name = "true", Run = "true" }] }))
                : Results.Unauthorized());
        app.MapPost(RunnerApiRoutes.Events, async (HttpContext ctx, JobTokenService tokens, RunnerStepEvent evt) =>
        {
            if (await JobOf(ctx, tokens) is not var (_, job)) return Results.Unauthorized();
            if (evt.Type == JobEventTypes.StepStarted && evt.StepIndex == 0) job.FirstStepAt = evt.At;
            return Results.NoContent();
        });
        app.MapPost(RunnerApiRoutes.Logs, async (HttpContext ctx, JobTokenService tokens) =>
        {
            if (await JobOf(ctx, tokens) is null) return Results.Unauthorized();
            await ctx.Request.Body.CopyToAsync(Stream.Null);
            return Results.NoContent();
        });
        app.MapPost(RunnerApiRoutes.Complete, async (HttpContext ctx, JobTokenService tokens, RunnerCompletion completion) =>
        {
            if (await JobOf(ctx, tokens) is not var (_, job)) return Results.Unauthorized();
            job.Completed.TrySetResult(DateTimeOffset.UtcNow);
            return Results.NoContent();
        });
        await app.StartAsync();
        return self;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}

internal sealed class BenchJob
{
    public DateTimeOffset FirstStepAt { get; set; }
    public DateTimeOffset FetchedAt { get; private set; }

    public bool Fetched()
    {
        if (FetchedAt == default) FetchedAt = DateTimeOffset.UtcNow;
        return true;
    }
    public TaskCompletionSource<DateTimeOffset> Completed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
