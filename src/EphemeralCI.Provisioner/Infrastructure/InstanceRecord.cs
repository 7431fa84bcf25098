using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace EphemeralCI.Provisioner.Infrastructure;

/// <summary>
/// One provisioner instance's lease: while its heartbeat is fresh, the runners it owns are its alone;
/// once it stops, a live instance adopts them. <see cref="Name"/> is stable across restarts of the same
/// instance (the machine's or pod's name by default), so a restarted process owns its rows again at once;
/// <see cref="Incarnation"/> tells one process of that name from the next.
/// </summary>
public sealed class InstanceRecord
{
    public const int MaxNameLength = 128;

    public required string Name { get; set; }
    public Guid Incarnation { get; set; }
    public required string Host { get; set; }
    public int ProcessId { get; set; }
    public DateTimeOffset StartedAt { get; set; }
    public DateTimeOffset HeartbeatAt { get; set; }
}

public sealed class InstanceRecordConfiguration : IEntityTypeConfiguration<InstanceRecord>
{
    public void Configure(EntityTypeBuilder<InstanceRecord> b)
    {
        b.ToTable("provisioner_instances");
        b.HasKey(i => i.Name);
        b.Property(i => i.Name).HasMaxLength(InstanceRecord.MaxNameLength);
        b.Property(i => i.Host).HasMaxLength(256);
        // The only concurrent writer of a row is a second process claiming the same name: it must see the first.
        b.Property(i => i.Incarnation).IsConcurrencyToken();
    }
}
