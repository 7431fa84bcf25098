using EphemeralCI.Contracts.Runner;

namespace EphemeralCI.Contracts.Messages;

/// <summary>
/// provisioner → intake, every <paramref name="Interval"/>: what one provisioner instance's warm pools hold now
/// (a snapshot; the next one supersedes it). Published straight on the bus, not through the outbox: a report lost
/// while the broker is down is worth nothing once the next is due, and each would otherwise cost a database write.
/// The intake counts an instance's pools until three intervals pass without a newer report.
/// </summary>
/// <param name="Instance">The provisioner instance (<c>Provisioner:Instance:Name</c>, the pod or machine name by default).</param>
/// <param name="Pools">Every template this instance keeps a warm pool for.</param>
/// <param name="At">When the pools were read, by the instance's clock.</param>
/// <param name="Interval">How often this instance reports.</param>
public sealed record WarmPoolReport(string Instance, IReadOnlyList<WarmPoolState> Pools, DateTimeOffset At, TimeSpan Interval)
{
    /// <summary>The longest instance name (the provisioner's lease names have at most 128 characters).</summary>
    public const int MaxInstanceLength = 128;

    /// <summary>The longest template name (as the intake stores a job's template).</summary>
    public const int MaxTemplateLength = 63;

    /// <summary>The longest backend name.</summary>
    public const int MaxBackendLength = 32;

    /// <summary>More templates than this in one report are refused (a bound for a message of unknown origin).</summary>
    public const int MaxPools = 500;

    /// <summary>The shortest and longest report interval: a provisioner refuses others at start, the intake clamps to them.</summary>
    public static readonly TimeSpan MinInterval = TimeSpan.FromSeconds(1), MaxInterval = TimeSpan.FromMinutes(5);

    /// <summary>Reports missed before an instance's pools stop counting (it stopped, or lost the bus).</summary>
    public const int MissedReportsUntilStale = 3;
}
