using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace EphemeralCI.Messaging;

/// <summary>The messaging module's meter and activity source: the outbox backlog of every module in this process.</summary>
public static class OutboxTelemetry
{
    public const string Name = "EphemeralCI.Messaging";
    public static readonly ActivitySource Source = new(Name);
    private static readonly Meter Meter = new(Name);
    private static readonly ConcurrentDictionary<string, Func<long?>> Backlogs = new();

    static OutboxTelemetry()
    {
        Meter.CreateObservableGauge("eci.outbox.backlog", Observe, "{message}",
            "Outbox rows committed but not yet published to the bus, by module.");
    }

    /// <summary>Registers a module's backlog (null while it cannot be read); the last registration for a module wins.</summary>
    public static void Register(string module, Func<long?> backlog) => Backlogs[module] = backlog;

    private static IEnumerable<Measurement<long>> Observe()
    {
        foreach (var (module, read) in Backlogs)
        {
            if (read() is { } value) yield return new Measurement<long>(value, new KeyValuePair<string, object?>("module", module));
        }
    }
}
