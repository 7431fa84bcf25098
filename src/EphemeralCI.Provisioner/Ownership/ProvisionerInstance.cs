using EphemeralCI.Provisioner.Infrastructure;

namespace EphemeralCI.Provisioner.Ownership;

/// <summary>Configuration section <c>Provisioner:Instance</c>.</summary>
public sealed class InstanceOptions
{
    public const string Section = "Provisioner:Instance";

    /// <summary>
    /// This instance's name, stable across its restarts: the machine's (or pod's) name by default. Two
    /// provisioners on one database need two names; a second process under a name whose lease is live
    /// refuses to start.
    /// </summary>
    public string? Name { get; set; }

    /// <summary>How often the lease is renewed.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>An instance whose heartbeat is older than this is dead: a live one adopts its runners.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    public string ResolvedName() => string.IsNullOrWhiteSpace(Name) ? System.Environment.MachineName : Name.Trim();
}

/// <summary>Which provisioner instance this process is, once <see cref="InstanceLease"/> has taken its lease at start-up.</summary>
public sealed class ProvisionerInstance
{
    private string? _name;

    public string Name => _name ?? throw new InvalidOperationException("the instance's lease is taken at start-up; nothing may own a runner before that");

    /// <summary>This process, as against an earlier or later one of the same name.</summary>
    public Guid Incarnation { get; } = Guid.NewGuid();

    public bool IsKnown => _name is not null;

    /// <summary>Set once, by <see cref="InstanceLease"/> (or a test).</summary>
    public void Set(string name)
    {
        if (name.Length is 0 or > InstanceRecord.MaxNameLength) throw new ArgumentException($"an instance name has 1 to {InstanceRecord.MaxNameLength} characters", nameof(name));
        if (_name is { } existing && existing != name) throw new InvalidOperationException($"this process is instance '{existing}', not '{name}'");
        _name = name;
    }

    /// <summary>Whether a runner row is this instance's to act on (rows from before instances existed are anyone's: there was one provisioner).</summary>
    public bool Owns(RunnerRecord runner) => runner.Instance is null || runner.Instance == Name;
}
