using System.Diagnostics;
using System.Diagnostics.Metrics;
using EphemeralCI.Persistence;
using EphemeralCI.Provisioner.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EphemeralCI.Provisioner.Telemetry;

/// <summary>
/// The provisioner's meter and activity source (docs/telemetry.md): runners active and waiting per backend
/// and template, read from the runner table (the one truth, shared by replicas) when a collector asks.
/// The gauges are made when this hosted service starts, which is after the provisioner's migrator (hosted
/// services start in registration order): made earlier, the OTLP exporter's first collection read a table
/// a fresh database did not have yet, and EF logged "Failed executing DbCommand" on every first start.
/// </summary>
public sealed class ProvisionerTelemetry(IMeterFactory meters, IServiceScopeFactory scopes, TimeProvider clock) : IHostedService, IDisposable
{
    public const string Name = "EphemeralCI.Provisioner";
    public static readonly ActivitySource Source = new(Name);
    private static readonly RunnerState[] Active = [RunnerState.Provisioning, RunnerState.Running, RunnerState.Finished];

    private Meter? _meter;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var runners = new DatabaseGauge<ProvisionerDbContext, RunnerCount>(scopes, clock, db => db.Runners
            .Where(r => r.State == RunnerState.Waiting || Active.Contains(r.State))
            .GroupBy(r => new { Waiting = r.State == RunnerState.Waiting, r.Backend, r.Template })
            .Select(g => new RunnerCount(g.Key.Waiting, g.Key.Backend, g.Key.Template, g.Count()))
            .ToList());
        _meter = meters.Create(Name);
        _meter.CreateObservableGauge("eci.runners.active", () => Observe(runners, waiting: false), "{runner}",
            "Runners provisioning, running or not yet torn down, by backend and template.");
        _meter.CreateObservableGauge("eci.runners.waiting", () => Observe(runners, waiting: true), "{runner}",
            "Jobs waiting for a free runner (a concurrency limit is full), by backend and template.");
        return Task.CompletedTask;
    }

    private static IEnumerable<Measurement<int>> Observe(DatabaseGauge<ProvisionerDbContext, RunnerCount> gauge, bool waiting) =>
        gauge.Read().Where(c => c.Waiting == waiting).Select(c => new Measurement<int>(c.Count,
            new KeyValuePair<string, object?>("backend", c.Backend ?? "none"),
            new KeyValuePair<string, object?>("template", c.Template ?? "none")));

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => _meter?.Dispose();

    private sealed record RunnerCount(bool Waiting, string? Backend, string? Template, int Count);
}
