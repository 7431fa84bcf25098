using System.Diagnostics.Metrics;

namespace EphemeralCI.Provisioner.Teardown;

/// <summary>Counts runners whose teardown check found something left (per attempt, by backend).</summary>
public sealed class TeardownMetrics
{
    public const string MeterName = "EphemeralCI.Provisioner";
    public const string FailuresName = "eci.runner.teardown.failures";
    private readonly Counter<long> _failures;

    public TeardownMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _failures = meter.CreateCounter<long>(FailuresName, unit: "{check}",
            description: "Teardown checks that found something of a destroyed runner left (each attempt counts)");
    }

    public void Failed(string backend, bool final) =>
        _failures.Add(1, new KeyValuePair<string, object?>("backend", backend), new KeyValuePair<string, object?>("final", final));
}
