using System.Diagnostics;
using OpenTelemetry;

namespace EphemeralCI.Messaging;

/// <summary>
/// A job's W3C trace context, kept on the rows that carry its work past the request or consumer that
/// began it (an outbox message, a runner), so work a background loop does later — a publish, a start
/// after a wait — continues the job's trace instead of starting one of its own or none.
/// </summary>
public static class JobTrace
{
    /// <summary>"00-" + 32 + "-" + 16 + "-" + 2 hex digits.</summary>
    public const int MaxLength = 55;

    /// <summary>The current activity's W3C id when it is recorded (a trace someone will see), else null.</summary>
    public static string? Current() =>
        Activity.Current is { IdFormat: ActivityIdFormat.W3C, Recorded: true, Id: { Length: <= MaxLength } id } ? id : null;

    /// <summary>
    /// A span of <paramref name="source"/>, child of <paramref name="traceParent"/>, current until disposed —
    /// also inside a loop that suppresses instrumentation (its own polling is no one's trace, this is the job's).
    /// Nothing (null) when there is no trace to continue.
    /// </summary>
    public static IDisposable? Continue(ActivitySource source, string? traceParent, string name, ActivityKind kind = ActivityKind.Internal)
    {
        if (traceParent is null || !ActivityContext.TryParse(traceParent, null, out var parent)) return null;
        var traced = SuppressInstrumentationScope.Begin(false);
        var activity = source.StartActivity(name, kind, parent);
        return new Continued(activity, traced);
    }

    private sealed class Continued(Activity? activity, IDisposable traced) : IDisposable
    {
        public void Dispose()
        {
            activity?.Dispose();
            traced.Dispose();
        }
    }
}
