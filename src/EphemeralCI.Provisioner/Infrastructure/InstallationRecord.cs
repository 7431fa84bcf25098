namespace EphemeralCI.Provisioner.Infrastructure;

/// <summary>
/// The one row that names this installation (this provisioner database): made at its first start,
/// never changed. Everything the installation creates on a machine carries it, so two installations
/// on one host each sweep only their own leftovers.
/// </summary>
public sealed class InstallationRecord
{
    /// <summary>Always <see cref="SingletonKey"/>: a second row cannot be written, so racing first starts agree.</summary>
    public int Key { get; set; } = SingletonKey;
    public Guid Id { get; set; }
    public DateTimeOffset CreatedAt { get; set; }

    public const int SingletonKey = 1;
}
