using EphemeralCI.Messaging;
using EphemeralCI.Persistence;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Provisioner.Infrastructure;

public sealed class ProvisionerDbContext(DbContextOptions<ProvisionerDbContext> options) : DbContext(options), IOutboxDbContext
{
    public DbSet<RunnerRecord> Runners => Set<RunnerRecord>();
    public DbSet<OutboxMessage> OutboxMessages => Set<OutboxMessage>();
    public DbSet<InstallationRecord> Installation => Set<InstallationRecord>();
    public DbSet<InstanceRecord> Instances => Set<InstanceRecord>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfiguration(new RunnerRecordConfiguration());
        modelBuilder.ApplyConfiguration(new OutboxMessageConfiguration());
        modelBuilder.ApplyConfiguration(new InstallationRecordConfiguration());
        modelBuilder.ApplyConfiguration(new InstanceRecordConfiguration());
        modelBuilder.AdaptToProvider(Database);
    }
}
