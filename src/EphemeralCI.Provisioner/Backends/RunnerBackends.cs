namespace EphemeralCI.Provisioner.Backends;

/// <summary>The registered backends by name, as templates refer to them.</summary>
public sealed class RunnerBackends(IEnumerable<IRunnerBackend> backends)
{
    private readonly Dictionary<string, IRunnerBackend> _byName =
        backends.ToDictionary(b => b.Name, StringComparer.OrdinalIgnoreCase);

    public IReadOnlyCollection<IRunnerBackend> All => _byName.Values;

    public bool TryGet(string? name, out IRunnerBackend backend) => _byName.TryGetValue(name ?? "", out backend!);
}
