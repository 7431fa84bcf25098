using EphemeralCI.Persistence;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Cache.Infrastructure;

/// <summary>Cache entry metadata, and what was served to which job attempt. Provider-neutral: Postgres in the services, SQLite in the all-in-one server.</summary>
public sealed class CacheDbContext(DbContextOptions<CacheDbContext> options) : DbContext(options)
{
    public DbSet<CacheEntry> Entries => Set<CacheEntry>();
    public DbSet<CacheUse> Uses => Set<CacheUse>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(CacheDbContext).Assembly);
        modelBuilder.AdaptToProvider(Database);
    }
}
