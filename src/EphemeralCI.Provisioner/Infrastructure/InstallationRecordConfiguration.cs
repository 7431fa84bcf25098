using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace EphemeralCI.Provisioner.Infrastructure;

public sealed class InstallationRecordConfiguration : IEntityTypeConfiguration<InstallationRecord>
{
    public void Configure(EntityTypeBuilder<InstallationRecord> b)
    {
        b.ToTable("installation");
        b.HasKey(i => i.Key);
        b.Property(i => i.Key).ValueGeneratedNever();
    }
}
