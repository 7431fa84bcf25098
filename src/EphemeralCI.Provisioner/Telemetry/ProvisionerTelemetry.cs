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
/// </summary>
public sealed class ProvisionerTelemetry : IHostedService, IDisposable
{
    public const string Name = "EphemeralCI.Provisioner";
    public static readonly ActivitySource Source = new(Name);
    private static readonly RunnerState[] Active = [RunnerState.Provisioning, RunnerState.Running, RunnerState.Finished];

    private readonly Meter _meter;

    public ProvisionerTelemetry(IMeterFactory meters, IServiceScopeFactory scopes, TimeProvider clock)
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
    }

    private static IEnumerable<Measurement<int>> Observe(DatabaseGauge<ProvisionerDbContext, RunnerCount> gauge, bool waiting) =>
        gauge.Read().Where(c => c.Waiting == waiting).Select(c => new Measurement<int>(c.Count,
            new KeyValuePair<string, object?>("backend", c.Backend ?? "none"),
            new KeyValuePair<string, object?>("template", c.Template ?? "none")));

    // A hosted service only so that it exists from the start (the gauges are made in the constructor).
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => _meter.Dispose();

    private sealed record RunnerCount(bool Waiting, string? Backend, string? Template, int Count);
}
