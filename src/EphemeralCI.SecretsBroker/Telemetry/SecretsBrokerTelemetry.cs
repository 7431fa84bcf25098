using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace EphemeralCI.SecretsBroker.Telemetry;

/// <summary>The secrets broker's meter and activity source (docs/telemetry.md). Counts only: never a name or value.</summary>
public static class SecretsBrokerTelemetry
{
    public const string Name = "EphemeralCI.SecretsBroker";
    public static readonly ActivitySource Source = new(Name);
    private static readonly Meter Meter = new(Name);

    private static readonly Counter<long> Exchanged = Meter.CreateCounter<long>(
        "eci.secrets.exchanged", "{secret}", "Secrets handed to a job in exchange for its job token.");
    private static readonly Counter<long> Refused = Meter.CreateCounter<long>(
        "eci.secrets.refused", "{request}", "Secrets or exchanges refused, by reason (denied by policy, replayed token, revoked token).");

    public static void Exchange(int granted, int denied)
    {
        if (granted > 0) Exchanged.Add(granted);
        if (denied > 0) Refused.Add(denied, new KeyValuePair<string, object?>("reason", "denied"));
    }

    public static void Replayed() => Refused.Add(1, new KeyValuePair<string, object?>("reason", "replayed"));

    public static void Revoked() => Refused.Add(1, new KeyValuePair<string, object?>("reason", "revoked"));
}
