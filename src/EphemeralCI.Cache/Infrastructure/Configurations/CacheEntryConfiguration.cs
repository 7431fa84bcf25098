using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace EphemeralCI.Cache.Infrastructure.Configurations;

internal sealed class CacheEntryConfiguration : IEntityTypeConfiguration<CacheEntry>
{
    public void Configure(EntityTypeBuilder<CacheEntry> b)
    {
        b.ToTable("cache_entries");
        b.HasKey(e => e.Id);
        b.Property(e => e.Repository).HasMaxLength(CacheEntry.MaxRepositoryLength);
        b.Property(e => e.Scope).HasMaxLength(CacheEntry.MaxScopeLength);
        b.Property(e => e.Key).HasMaxLength(CacheEntry.MaxKeyLength);
        b.Property(e => e.Version).HasMaxLength(CacheEntry.MaxVersionLength);
        // Stored as text so a reader of the table (and SQLite) needs no enum table.
        b.Property(e => e.State).HasConversion<string>().HasMaxLength(16);
        b.Property(e => e.Sha256).HasMaxLength(64);
        b.Property(e => e.ObjectKey).HasMaxLength(200);
        // One writer per key and version: a second reservation of the same entry hits this index.
        b.HasIndex(e => new { e.Repository, e.Scope, e.Key, e.Version }).IsUnique();
        // Restore: exact and prefix lookups within one scope and version.
        b.HasIndex(e => new { e.Repository, e.Scope, e.Version, e.State });
        // Eviction and expiry walk entries by last access: a repository's, and one ref's within its own budget.
        b.HasIndex(e => new { e.Repository, e.LastAccessedAt });
        b.HasIndex(e => new { e.Repository, e.Scope, e.LastAccessedAt });
        b.HasIndex(e => new { e.State, e.CreatedAt });
    }
}
