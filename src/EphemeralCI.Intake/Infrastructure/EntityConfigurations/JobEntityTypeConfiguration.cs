using EphemeralCI.Intake.Model;
using EphemeralCI.Intake.Validation;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace EphemeralCI.Intake.Infrastructure.EntityConfigurations;

internal sealed class JobEntityTypeConfiguration : IEntityTypeConfiguration<Job>
{
    public const string IdempotencyIndex = "ix_jobs_api_key_id_idempotency_key";

    public void Configure(EntityTypeBuilder<Job> b)
    {
        b.ToTable("jobs");
        b.HasKey(j => j.Id);
        b.Property(j => j.Id).ValueGeneratedNever();
        b.Property(j => j.Name).HasMaxLength(200);
        b.Property(j => j.Repository).HasMaxLength(200);
        b.Property(j => j.Ref).HasMaxLength(255);
        b.Property(j => j.CommitSha).HasMaxLength(64);
        b.Property(j => j.RunnerTemplate).HasMaxLength(63);
        b.Property(j => j.RunnerTemplateHash).HasMaxLength(80);
        b.Property(j => j.AgentKeyHash).HasMaxLength(64);
        b.Property(j => j.Environment).HasMaxLength(JobSpecValidator.MaxEnvironmentLength);
        b.Property(j => j.SubmittedBy).HasMaxLength(300);
        b.Property(j => j.Spec).HasColumnType("jsonb");
        // Stored as the API spells it ("timed_out"), so the table reads like the API.
        b.Property(j => j.Status).HasConversion(s => JobStatusNames.ToName(s), s => JobStatusNames.Parse(s)).HasMaxLength(32);
        b.Property(j => j.StatusReason).HasMaxLength(2000);
        b.Property(j => j.IdempotencyKey).HasMaxLength(255);
        b.Property(j => j.RequestHash).HasMaxLength(64);
        b.Property(j => j.TraceParent).HasMaxLength(EphemeralCI.Messaging.JobTrace.MaxLength);
        b.Property(j => j.Version).IsRowVersion();

        // Lists are newest first, optionally by status or repository.
        b.HasIndex(j => j.CreatedAt);
        b.HasIndex(j => new { j.Status, j.CreatedAt });
        b.HasIndex(j => new { j.Repository, j.CreatedAt });
        b.HasIndex(j => new { j.ApiKeyId, j.IdempotencyKey })
            .IsUnique()
            .HasFilter("idempotency_key IS NOT NULL")
            .HasDatabaseName(IdempotencyIndex);
    }
}
