using EphemeralCI.Intake.Infrastructure.EntityConfigurations;
using EphemeralCI.Intake.Model;
using EphemeralCI.Messaging;
using EphemeralCI.Persistence;
using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Intake.Infrastructure;

public sealed class IntakeDbContext(DbContextOptions<IntakeDbContext> options) : DbContext(options), IOutboxDbContext, IDataProtectionKeyContext
{
    public DbSet<Job> Jobs => Set<Job>();
    public DbSet<JobEvent> JobEvents => Set<JobEvent>();
    public DbSet<JobLogChunk> JobLogChunks => Set<JobLogChunk>();
    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();
    public DbSet<OutboxMessage> OutboxMessages => Set<OutboxMessage>();
    /// <summary>The provisioners' warm pools as each instance last reported them (the web UI's Runners page).</summary>
    public DbSet<ReportedWarmPool> ReportedWarmPools => Set<ReportedWarmPool>();
    /// <summary>The data-protection key ring every replica shares, each key's XML encrypted (Infrastructure/DataProtection).</summary>
    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfiguration(new JobEntityTypeConfiguration());
        modelBuilder.ApplyConfiguration(new JobEventEntityTypeConfiguration());
        modelBuilder.ApplyConfiguration(new JobLogChunkEntityTypeConfiguration());
        modelBuilder.ApplyConfiguration(new ApiKeyEntityTypeConfiguration());
        modelBuilder.ApplyConfiguration(new OutboxMessageConfiguration());
        modelBuilder.ApplyConfiguration(new ReportedWarmPoolEntityTypeConfiguration());
        modelBuilder.AdaptToProvider(Database);
    }
}
