using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace EphemeralCI.SecretsBroker.Infrastructure.Configurations;

internal sealed class SecretVersionConfiguration : IEntityTypeConfiguration<SecretVersion>
{
    public void Configure(EntityTypeBuilder<SecretVersion> b)
    {
        b.ToTable("secret_versions");
        b.HasKey(v => new { v.SecretId, v.Version });
        b.Property(v => v.KeyId).HasMaxLength(64);
        b.Property(v => v.CreatedBy).HasMaxLength(128);
        // The rewrap pass looks for versions still wrapped under an old key.
        b.HasIndex(v => v.KeyId);
    }
}
