namespace EphemeralCI.Contracts.Runner;

/// <summary>One template's warm pool: how many sandboxes it keeps started ahead of demand, and how many are ready now.</summary>
public sealed record WarmPoolState(string Template, string Backend, int Target, int Ready);

/// <summary>
/// The provisioner's warm pools as they are now, for a module in the same process to show (the all-in-one
/// server's web UI). Per provisioner instance and in memory, as the pools themselves are.
/// </summary>
public interface IWarmPoolStatus
{
    IReadOnlyList<WarmPoolState> Current();
}
