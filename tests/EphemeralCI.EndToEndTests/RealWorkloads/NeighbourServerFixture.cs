using System.Text.RegularExpressions;

namespace EphemeralCI.EndToEndTests.RealWorkloads;

/// <summary>
/// An all-in-one server as a newcomer starts it: default cgroup parent and work root (only the data
/// folder and port are its own), so every such server of the test run is a neighbour of the others
/// on this machine — the setting in which two installations used to kill each other's runners. The
/// reconciler ticks every second, so a neighbour's sweep gets every chance to hit a running job.
/// </summary>
public class NeighbourServerFixture : ServerFixture
{
    public NeighbourServerFixture()
    {
        OwnCgroupName = false;
        ExtraArguments.Add("--Provisioner:Reconciler:IntervalSeconds=1");
    }

    /// <summary>The v2 directory under which this server puts job cgroups, as it logged it at start.</summary>
    public string JobCgroupParent()
    {
        var match = Regex.Match(Output, @"Job cgroups: \w+ layout under (\S+)");
        return match.Success ? match.Groups[1].Value : throw new InvalidOperationException($"the server did not log its job cgroup parent:\n{Output}");
    }
}

/// <summary>A server with the defaults but a cgroup parent of its own: nothing a neighbour test plants is its business.</summary>
public sealed class FastReconcilerServerFixture : ServerFixture
{
    public FastReconcilerServerFixture() => ExtraArguments.Add("--Provisioner:Reconciler:IntervalSeconds=1");
}

/// <summary>Two installations on one machine, both with the defaults.</summary>
public sealed class TwoNeighboursFixture : Xunit.IAsyncLifetime
{
    public NeighbourServerFixture First { get; } = new();
    public NeighbourServerFixture Second { get; } = new();

    public async Task InitializeAsync() => await Task.WhenAll(First.InitializeAsync(), Second.InitializeAsync());

    public async Task DisposeAsync() => await Task.WhenAll(First.DisposeAsync(), Second.DisposeAsync());
}
