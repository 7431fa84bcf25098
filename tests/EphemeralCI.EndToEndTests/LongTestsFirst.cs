using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestCollectionOrderer("EphemeralCI.EndToEndTests.LongTestsFirst", "EphemeralCI.EndToEndTests")]

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// Starts the three-minute job's collection first, then the rest in xunit's own order. xunit runs as many tests at
/// once as there are cores (2 here), so a long test that waits most of its time, started last, was the run's tail:
/// in CI it ran alone for its last 1.5 minutes. Started first, it waits while the other tests run beside it.
/// </summary>
public sealed class LongTestsFirst : ITestCollectionOrderer
{
    private static readonly string[] First = [nameof(RealWorkloads.ThreeMinuteJobTests)];

    public IEnumerable<ITestCollection> OrderTestCollections(IEnumerable<ITestCollection> collections)
    {
        var ordered = new DefaultTestCollectionOrderer().OrderTestCollections(collections).ToList();
        int Rank(ITestCollection c) => Array.FindIndex(First, name => c.DisplayName.Contains(name, StringComparison.Ordinal)) is var i and >= 0 ? i : First.Length;
        return ordered.OrderBy(Rank); // stable: the rest keep xunit's order
    }
}
