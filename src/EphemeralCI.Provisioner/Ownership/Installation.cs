namespace EphemeralCI.Provisioner.Ownership;

/// <summary>
/// Which installation this provisioner is: the id its database holds (<see cref="Infrastructure.InstallationRecord"/>),
/// read at start-up before anything is done on the machine. Everything the installation makes on a
/// host — cgroups, work folders, network namespaces, nftables tables — carries it, and every sweep
/// of leftovers touches only what carries it.
/// </summary>
public sealed class Installation
{
    private Guid? _id;

    public Guid Id => _id ?? throw new InvalidOperationException("the installation id is read from the provisioner database at start-up; nothing may touch the machine before that");

    /// <summary>The id in 12 hex digits, for names with little room (cgroups, folders, socket paths).</summary>
    public string Tag => Id.ToString("N")[..12];

    public bool IsKnown => _id is not null;

    /// <summary>Set once, by <see cref="InstallationLoader"/> (or a test).</summary>
    public void Set(Guid id)
    {
        if (_id is { } existing && existing != id) throw new InvalidOperationException($"this process is installation {existing}, not {id}");
        _id = id;
    }
}
