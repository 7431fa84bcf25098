using EphemeralCI.GitHubActions.Model;
using EphemeralCI.Persistence;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.GitHubActions.Infrastructure;

/// <summary>Workflow jobs and webhook deliveries. Provider-neutral: Postgres in the service, SQLite in the all-in-one server.</summary>
public sealed class GitHubActionsDbContext(DbContextOptions<GitHubActionsDbContext> options) : DbContext(options)
{
    public DbSet<WorkflowJobRunner> WorkflowJobs => Set<WorkflowJobRunner>();
    public DbSet<WebhookDelivery> Deliveries => Set<WebhookDelivery>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(GitHubActionsDbContext).Assembly);
        modelBuilder.AdaptToProvider(Database);
    }
}
