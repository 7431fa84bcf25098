using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace EphemeralCI.Cache.Telemetry;

/// <summary>The cache's meter and activity source (docs/telemetry.md), by protocol: actions-v1, actions-v2, build-cache.</summary>
public static class CacheTelemetry
{
    public const string Name = "EphemeralCI.Cache";
    public const string ActionsV1 = "actions-v1";
    public const string ActionsV2 = "actions-v2";
    public const string BuildCache = "build-cache";

    public static readonly ActivitySource Source = new(Name);
    private static readonly Meter Meter = new(Name);

    private static readonly Counter<long> Hits = Meter.CreateCounter<long>("eci.cache.hits", "{lookup}", "Cache lookups that found an entry.");
    private static readonly Counter<long> Misses = Meter.CreateCounter<long>("eci.cache.misses", "{lookup}", "Cache lookups that found nothing.");
    private static readonly Counter<long> Bytes = Meter.CreateCounter<long>("eci.cache.bytes", "By", "Bytes of entries served to jobs on a hit.");

    public static void Lookup(string protocol, long? hitBytes)
    {
        var tag = new KeyValuePair<string, object?>("protocol", protocol);
        if (hitBytes is not { } bytes)
        {
            Misses.Add(1, tag);
            return;
        }
        Hits.Add(1, tag);
        if (bytes > 0) Bytes.Add(bytes, tag);
    }
}
