namespace EphemeralCI.Contracts.Runner;

/// <summary>One template's warm pool: how many sandboxes it keeps started ahead of demand, and how many are ready now.</summary>
public sealed record WarmPoolState(string Template, string Backend, int Target, int Ready);

/// <summary>
/// The provisioner's warm pools as they are now, per provisioner instance and in memory, as the pools themselves
/// are. Other processes learn them from the provisioner's <see cref="Messages.WarmPoolReport"/> on the bus.
/// </summary>
public interface IWarmPoolStatus
{
    IReadOnlyList<WarmPoolState> Current();
}
