using EphemeralCI.Intake.Model;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace EphemeralCI.Intake.Infrastructure.EntityConfigurations;

internal sealed class JobEventEntityTypeConfiguration : IEntityTypeConfiguration<JobEvent>
{
    public const string SourceMessageIndex = "ix_job_events_job_id_source_message_id";

    public void Configure(EntityTypeBuilder<JobEvent> b)
    {
        b.ToTable("job_events");
        b.HasKey(e => e.Id);
        b.Property(e => e.Type).HasMaxLength(64);
        b.Property(e => e.Message).HasMaxLength(2000);
        b.Property(e => e.Data).HasColumnType("jsonb");
        b.HasOne<Job>().WithMany().HasForeignKey(e => e.JobId).OnDelete(DeleteBehavior.Cascade);
        b.HasIndex(e => new { e.JobId, e.At });
        // A redelivered message (or a retried runner call) finds its entry already there.
        b.HasIndex(e => new { e.JobId, e.SourceMessageId })
            .IsUnique()
            .HasFilter("source_message_id IS NOT NULL")
            .HasDatabaseName(SourceMessageIndex);
    }
}
