using EphemeralCI.Persistence;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Cache.Infrastructure;

/// <summary>Cache entry metadata. Provider-neutral: Postgres in the services, SQLite in the all-in-one server.</summary>
public sealed class CacheDbContext(DbContextOptions<CacheDbContext> options) : DbContext(options)
{
    public DbSet<CacheEntry> Entries => Set<CacheEntry>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(CacheDbContext).Assembly);
        modelBuilder.AdaptToProvider(Database);
    }
}
