using EphemeralCI.GitHubActions.Model;
using EphemeralCI.Persistence;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.GitHubActions.Infrastructure;

/// <summary>Workflow jobs and webhook deliveries. Provider-neutral: Postgres in the service, SQLite in the all-in-one server.</summary>
public sealed class GitHubActionsDbContext(DbContextOptions<GitHubActionsDbContext> options) : DbContext(options)
{
    public DbSet<WorkflowJobRunner> WorkflowJobs => Set<WorkflowJobRunner>();
    public DbSet<WebhookDelivery> Deliveries => Set<WebhookDelivery>();
    public DbSet<WarmRunner> WarmRunners => Set<WarmRunner>();

    /// <summary>
    /// Records a delivery id; false when it was recorded before. One statement (<c>ON CONFLICT DO NOTHING</c>, Postgres and
    /// SQLite alike), so concurrent redeliveries neither race nor log a failed insert.
    /// </summary>
    public async Task<bool> TryRecordDeliveryAsync(string id, string eventName, DateTimeOffset at, CancellationToken ct)
    {
        object receivedAt = Database.IsSqlite() ? at.UtcTicks : at.ToUniversalTime();
        return await Database.ExecuteSqlAsync(
            $"INSERT INTO webhook_deliveries (id, event, received_at) VALUES ({id}, {eventName}, {receivedAt}) ON CONFLICT (id) DO NOTHING", ct) == 1;
    }

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(GitHubActionsDbContext).Assembly);
        modelBuilder.AdaptToProvider(Database);
    }
}
