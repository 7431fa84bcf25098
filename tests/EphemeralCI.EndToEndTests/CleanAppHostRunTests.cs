using System.Diagnostics;
using System.Text.RegularExpressions;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Xunit;
using Xunit.Abstractions;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// An AppHost of its own, started for one test class: nothing has run on it before, and every line each
/// service printed from its first is kept (<see cref="Logs"/>).
/// </summary>
public sealed class FreshAppHostFixture : AppHostFixture
{
    private ServiceLogs? _logs;

    /// <summary>The console logs of the AppHost's services (its project resources), followed since their start.</summary>
    public ServiceLogs Logs => _logs ?? throw new InvalidOperationException("not started");

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        _logs = new ServiceLogs(App);
    }

    public override async Task DisposeAsync()
    {
        if (_logs is not null) await _logs.DisposeAsync();
        await base.DisposeAsync();
    }
}

/// <summary>
/// Every line of every service's console log, from the first: Aspire's <see cref="ResourceLoggerService"/>
/// replays what a resource printed so far (DCP keeps each process's output) to a new watcher, then follows it.
/// </summary>
public sealed class ServiceLogs : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Dictionary<string, List<LogLine>> _lines = [];
    private readonly List<Task> _watches = [];
    private long _lastLineTicks = Environment.TickCount64;

    public ServiceLogs(DistributedApplication app)
    {
        var logger = app.Services.GetRequiredService<ResourceLoggerService>();
        var model = app.Services.GetRequiredService<DistributedApplicationModel>();
        foreach (var service in model.Resources.OfType<ProjectResource>())
        {
            var lines = _lines[service.Name] = [];
            _watches.Add(Task.Run(async () =>
            {
                try
                {
                    await foreach (var batch in logger.WatchAsync(service).WithCancellation(_stop.Token))
                    {
                        lock (lines) lines.AddRange(batch);
                        Interlocked.Exchange(ref _lastLineTicks, Environment.TickCount64);
                    }
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested) { }
            }));
        }
    }

    public IReadOnlyCollection<string> Services => _lines.Keys;

    /// <summary>The lines <paramref name="service"/> printed so far, in order.</summary>
    public IReadOnlyList<LogLine> Of(string service)
    {
        var lines = _lines[service];
        lock (lines) return [.. lines];
    }

    /// <summary>Waits until no service printed anything for <paramref name="quiet"/> (at most <paramref name="within"/>): what is on its way is in.</summary>
    public async Task SettleAsync(TimeSpan quiet, TimeSpan within)
    {
        var deadline = Stopwatch.StartNew();
        while (Environment.TickCount64 - Interlocked.Read(ref _lastLineTicks) < quiet.TotalMilliseconds && deadline.Elapsed < within)
        {
            await Task.Delay(100);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_watches);
        _stop.Dispose();
    }
}

/// <summary>
/// Issue 21.1 on the AppHost (the all-in-one server's half: <see cref="CleanRunTests"/>): a clean first
/// start and a burst of jobs log nothing at warning or above in any service, and nothing tries to call home.
/// </summary>
public sealed partial class CleanAppHostRunTests(FreshAppHostFixture fx, ITestOutputHelper output) : IClassFixture<FreshAppHostFixture>
{
    /// <summary>
    /// 50 by default, not the issue's 200 (<see cref="CleanRunTests"/> runs those on the server): through the AppHost's
    /// four processes, RabbitMQ and Postgres, 200 took 5 min on a shared 2-core machine, too long for the suite's
    /// CI budget. ECI_E2E_BURST=200 runs the issue's number.
    /// </summary>
    private static int Burst => int.TryParse(Environment.GetEnvironmentVariable("ECI_E2E_BURST"), out var n) ? n : 50;

    [Fact]
    public async Task A_fresh_start_and_a_burst_of_jobs_log_no_warning_or_error_in_any_service()
    {
        var clock = Stopwatch.StartNew();
        var jobs = await Task.WhenAll(Enumerable.Range(0, Burst).Select(i =>
            fx.Intake.SubmitAsync(JobClient.Job($"burst {i}", null, ("hello", $"echo job {i}")))));
        foreach (var job in jobs)
        {
            Assert.Equal("succeeded", (await fx.Intake.WaitForTerminalAsync(job, TimeSpan.FromMinutes(5))).GetProperty("status").GetString());
        }
        foreach (var job in jobs) await fx.Intake.WaitForEventAsync(job, "runner.destroyed");
        output.WriteLine($"{Burst} jobs in {clock.Elapsed.TotalSeconds:F1} s");
        foreach (var job in jobs) await fx.WaitForVerifiedRunnerEndAsync(job);
        // DCP streams each process's output to the AppHost a moment later: let what is on its way arrive.
        await fx.Logs.SettleAsync(quiet: TimeSpan.FromSeconds(2), within: TimeSpan.FromSeconds(15));

        Assert.Equal(["cache", "intake", "provisioner", "secrets-broker"], fx.Logs.Services.Order());
        var problems = new List<string>();
        foreach (var service in fx.Logs.Services)
        {
            var lines = fx.Logs.Of(service).Select(l => (l.IsErrorMessage, Text: Plain(l.Content))).ToList();
            output.WriteLine($"{service}: {lines.Count} lines");
            // Captured from before the process's first line: DCP's own line as it starts the process is there.
            Assert.Contains(lines, l => l.Text.Contains("[sys] Starting process", StringComparison.Ordinal));
            // The check reads the format the services really print under the AppHost (the console logger's "simple"
            // one, coloured): a format it could not read would let every warning pass, so it must read the start's records.
            Assert.Contains(lines, l => Level(l.Text) == "info" && l.Text.Contains("Microsoft.Hosting.Lifetime", StringComparison.Ordinal));
            for (var i = 0; i < lines.Count; i++)
            {
                var (isStandardError, text) = lines[i];
                if (Level(text) is "warn" or "fail" or "crit"
                    || isStandardError // nothing is printed there on a healthy run; a crash's output is
                    || text.Contains("usage telemetry", StringComparison.OrdinalIgnoreCase)
                    || text.Contains("Failed executing DbCommand", StringComparison.Ordinal))
                {
                    problems.Add($"{service}{(isStandardError ? " (stderr)" : "")}:\n  " + string.Join("\n  ", lines.Skip(i).Take(6).Select(l => l.Text)));
                }
            }
        }
        Assert.True(problems.Count == 0, $"{problems.Count} warnings or errors on a healthy run:\n{string.Join("\n", problems)}");
    }

    /// <summary>
    /// The level of a record's first line ("info", "warn"…) as the console logger prints it under the AppHost:
    /// after the time Aspire puts in front, and without the colours (Aspire lets its children colour redirected output).
    /// </summary>
    private static string? Level(string line) => RecordStart().Match(line) is { Success: true } m ? m.Groups["level"].Value : null;

    private static string Plain(string content) => AnsiEscape().Replace(content, "");

    [GeneratedRegex(@"^(\d{4}-\d\d-\d\dT\S+\s)?(?<level>trce|dbug|info|warn|fail|crit):")]
    private static partial Regex RecordStart();

    [GeneratedRegex(@"\x1b\[[0-9;]*m")]
    private static partial Regex AnsiEscape();
}
