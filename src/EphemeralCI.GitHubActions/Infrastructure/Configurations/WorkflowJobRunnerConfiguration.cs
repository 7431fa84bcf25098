using EphemeralCI.GitHubActions.Model;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace EphemeralCI.GitHubActions.Infrastructure.Configurations;

internal sealed class WorkflowJobRunnerConfiguration : IEntityTypeConfiguration<WorkflowJobRunner>
{
    public void Configure(EntityTypeBuilder<WorkflowJobRunner> b)
    {
        b.ToTable("workflow_jobs");
        b.HasKey(j => j.Id);
        b.Property(j => j.Id).ValueGeneratedNever();
        b.Property(j => j.Repository).HasMaxLength(200);
        b.Property(j => j.Ref).HasMaxLength(300);
        b.Property(j => j.CommitSha).HasMaxLength(64);
        b.Property(j => j.Labels).HasMaxLength(2000);
        b.Property(j => j.Template).HasMaxLength(100);
        b.Property(j => j.State).HasConversion<string>().HasMaxLength(20);
        b.Property(j => j.GitHubStatus).HasMaxLength(20);
        b.Property(j => j.RunnerName).HasMaxLength(100);
        b.Property(j => j.AssignedRunner).HasMaxLength(100);
        b.Property(j => j.Reason).HasMaxLength(500);
        // The launch claim: two launchers that read the same queued row cannot both save Launching.
        b.Property(j => j.Version).IsConcurrencyToken();
        b.HasIndex(j => j.State);
    }
}

internal sealed class WebhookDeliveryConfiguration : IEntityTypeConfiguration<WebhookDelivery>
{
    public void Configure(EntityTypeBuilder<WebhookDelivery> b)
    {
        b.ToTable("webhook_deliveries");
        b.HasKey(d => d.Id);
        b.Property(d => d.Id).HasMaxLength(100);
        b.Property(d => d.Event).HasMaxLength(50);
    }
}

internal sealed class WarmRunnerConfiguration : IEntityTypeConfiguration<WarmRunner>
{
    public void Configure(EntityTypeBuilder<WarmRunner> b)
    {
        b.ToTable("warm_runners");
        b.HasKey(r => r.Name);
        b.Property(r => r.Name).HasMaxLength(100);
        b.Property(r => r.Template).HasMaxLength(100);
        b.Property(r => r.Scope).HasMaxLength(200);
        b.Property(r => r.State).HasConversion<string>().HasMaxLength(20);
        b.Property(r => r.Reason).HasMaxLength(500);
        b.Property(r => r.Version).IsConcurrencyToken();
        // A slot of a pool holds one launching or idle runner at most, whichever pass or replica fills it: the pool
        // never exceeds MinIdle. Double-quoted identifiers: the same filter for Postgres and SQLite.
        b.HasIndex(r => new { r.Template, r.Scope, r.Slot }).IsUnique().HasFilter("\"state\" IN ('Launching', 'Idle')");
        b.HasIndex(r => r.State);
    }
}
