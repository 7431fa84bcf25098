using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace EphemeralCI.SecretsBroker.Infrastructure.Configurations;

internal sealed class SecretConfiguration : IEntityTypeConfiguration<Secret>
{
    public void Configure(EntityTypeBuilder<Secret> b)
    {
        b.ToTable("secrets");
        b.HasKey(s => s.Id);
        b.Property(s => s.Name).HasMaxLength(128);
        b.HasIndex(s => s.Name).IsUnique();
        b.Property(s => s.Environment).HasMaxLength(128);
        b.Property(s => s.UpdatedBy).HasMaxLength(128);
        // Concurrent updates of one secret must not both take the same next version number.
        b.Property(s => s.CurrentVersion).IsConcurrencyToken();
        // Deleting a secret deletes its sealed values with it: nothing to decrypt is left behind.
        b.HasMany(s => s.Versions).WithOne().HasForeignKey(v => v.SecretId).OnDelete(DeleteBehavior.Cascade);
    }
}
