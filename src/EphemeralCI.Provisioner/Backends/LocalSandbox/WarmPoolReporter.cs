using EphemeralCI.Contracts.Messages;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.Provisioner.Ownership;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>Configuration section <c>Provisioner:WarmPoolReport</c>.</summary>
public sealed class WarmPoolReportOptions
{
    public const string Section = "Provisioner:WarmPoolReport";

    /// <summary>How often this instance tells the intake what its warm pools hold (1 s to 5 min).</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(15);
}

/// <summary>
/// Tells the intake what this instance's warm pools hold (<see cref="WarmPoolReport"/>), every interval, for the
/// web UI's Runners page: the pools live in this process's memory, and the intake is another process in the
/// AppHost and on Kubernetes. The all-in-one server goes the same way (its in-memory bus), so the page has one
/// source everywhere. An instance without warm pools sends nothing: the default configuration costs no traffic.
/// </summary>
public sealed class WarmPoolReporter(
    IWarmPoolStatus pools,
    ProvisionerInstance instance,
    IBus bus,
    IHostApplicationLifetime lifetime,
    IOptions<WarmPoolReportOptions> options,
    TimeProvider clock,
    ILogger<WarmPoolReporter> logger) : BackgroundService
{
    private TimeSpan Interval => options.Value.Interval;
    private bool _failing;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The bus starts after this service: the first report waits until the host is up.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        {
            try { await started.Task.WaitAsync(stoppingToken); }
            catch (OperationCanceledException) { return; }
        }
        using var timer = new PeriodicTimer(Interval, clock);
        try
        {
            do await ReportAsync(stoppingToken);
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Publishes one report now; returns it, or null when there was nothing to report.</summary>
    public async Task<WarmPoolReport?> ReportAsync(CancellationToken ct)
    {
        var current = pools.Current();
        if (current.Count == 0 || !instance.IsKnown) return null;
        var report = new WarmPoolReport(instance.Name, current, clock.GetUtcNow(), Interval);
        // A periodic report is no job's work: its publish makes no trace (and the intake's receive begins none: UntracedEndpoints).
        using var quiet = SuppressInstrumentationScope.Begin();
        // Bounded by the interval, and dropped by the broker after it: the next report says it better.
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(Interval);
        try
        {
            await bus.Publish(report, context => context.TimeToLive = Interval, bounded.Token);
            if (_failing) logger.LogInformation("Warm pool reports reach the bus again");
            _failing = false;
        }
        catch (Exception ex) when (!ct.IsCancellationRequested)
        {
            // Once per outage, not every interval.
            if (!_failing) logger.LogWarning("Could not report the warm pools on the bus (the Runners page will drop this instance's pools): {Reason}", ex.Message);
            _failing = true;
        }
        return report;
    }
}
