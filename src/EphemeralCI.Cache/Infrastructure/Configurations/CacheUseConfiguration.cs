using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace EphemeralCI.Cache.Infrastructure.Configurations;

internal sealed class CacheUseConfiguration : IEntityTypeConfiguration<CacheUse>
{
    public void Configure(EntityTypeBuilder<CacheUse> b)
    {
        b.ToTable("cache_uses");
        b.HasKey(u => u.Id);
        b.Property(u => u.Kind).HasMaxLength(8);
        b.Property(u => u.Protocol).HasMaxLength(16);
        b.Property(u => u.Key).HasMaxLength(CacheEntry.MaxKeyLength);
        b.Property(u => u.Version).HasMaxLength(CacheEntry.MaxVersionLength);
        b.Property(u => u.MatchedKey).HasMaxLength(CacheEntry.MaxKeyLength);
        b.Property(u => u.Scope).HasMaxLength(CacheEntry.MaxScopeLength);
        b.Property(u => u.Sha256).HasMaxLength(64);
        // The attestation reads one attempt's; the janitor deletes by age.
        b.HasIndex(u => new { u.JobId, u.Attempt });
        b.HasIndex(u => u.At);
    }
}
