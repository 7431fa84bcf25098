using EphemeralCI.Persistence;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.SecretsBroker.Infrastructure;

public sealed class SecretsDbContext(DbContextOptions<SecretsDbContext> options) : DbContext(options)
{
    public DbSet<Secret> Secrets => Set<Secret>();
    public DbSet<SecretVersion> SecretVersions => Set<SecretVersion>();
    public DbSet<SigningKey> SigningKeys => Set<SigningKey>();
    public DbSet<AuditEntry> AuditEntries => Set<AuditEntry>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(SecretsDbContext).Assembly);
        modelBuilder.AdaptToProvider(Database);
    }
}
