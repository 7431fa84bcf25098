using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace EphemeralCI.Provisioner.Infrastructure;

public sealed class RunnerRecordConfiguration : IEntityTypeConfiguration<RunnerRecord>
{
    public void Configure(EntityTypeBuilder<RunnerRecord> b)
    {
        b.ToTable("runners");
        b.HasKey(r => r.JobId);
        b.Property(r => r.RunnerId).HasMaxLength(64);
        b.HasIndex(r => r.RunnerId).IsUnique();
        b.Property(r => r.State).HasConversion<string>().HasMaxLength(16);
        b.Property(r => r.Outcome).HasConversion<string>().HasMaxLength(16);
        b.Property(r => r.Template).HasMaxLength(128);
        b.Property(r => r.TemplateHash).HasMaxLength(80);
        b.Property(r => r.Backend).HasMaxLength(32);
        b.Property(r => r.Repository).HasMaxLength(512);
        b.Property(r => r.Ref).HasMaxLength(512);
        b.Property(r => r.Environment).HasMaxLength(63);
        b.Property(r => r.Reason).HasMaxLength(2048);
        // The reconciler and watchers look for runners that are not yet destroyed.
        b.HasIndex(r => r.State);
        b.Property(r => r.Instance).HasMaxLength(InstanceRecord.MaxNameLength);
        b.Property(r => r.TraceParent).HasMaxLength(EphemeralCI.Messaging.JobTrace.MaxLength);
        // Each instance looks at its own runners; live ones look for a dead instance's.
        b.HasIndex(r => new { r.Instance, r.State });
        // Polled every second by the owner (CancelRequests); almost always null.
        b.HasIndex(r => r.CancelRequestedAt);
    }
}
