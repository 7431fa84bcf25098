using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;

namespace EphemeralCI.Persistence;

/// <summary>
/// The values of an observable gauge read from a module's database: read when a collector asks (a
/// Prometheus scrape, the OTLP exporter's interval), at most once per <see cref="MaxAge"/> (the Aspire
/// dashboard collects every second), and without a trace of its own (a scrape is not a job's work).
/// A database that cannot be read leaves the last values: a gauge never throws into the collector.
/// </summary>
public sealed class DatabaseGauge<TContext, TValue>(IServiceScopeFactory scopes, TimeProvider clock, Func<TContext, IReadOnlyList<TValue>> read)
    where TContext : DbContext
{
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(5);
    private readonly Lock _gate = new();
    private IReadOnlyList<TValue> _last = [];
    private DateTimeOffset _readAt = DateTimeOffset.MinValue;

    public IReadOnlyList<TValue> Read()
    {
        lock (_gate)
        {
            var now = clock.GetUtcNow();
            if (now - _readAt < MaxAge) return _last;
            _readAt = now;
            try
            {
                using var quiet = SuppressInstrumentationScope.Begin();
                using var scope = scopes.CreateScope();
                _last = read(scope.ServiceProvider.GetRequiredService<TContext>());
            }
            catch (Exception)
            {
                // Not migrated yet, or unreachable: the health checks report that; keep the last values.
            }
            return _last;
        }
    }
}
