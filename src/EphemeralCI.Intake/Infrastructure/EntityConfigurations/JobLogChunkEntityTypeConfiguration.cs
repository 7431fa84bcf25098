using EphemeralCI.Intake.Model;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace EphemeralCI.Intake.Infrastructure.EntityConfigurations;

internal sealed class JobLogChunkEntityTypeConfiguration : IEntityTypeConfiguration<JobLogChunk>
{
    public const string OffsetIndex = "ix_job_log_chunks_job_id_offset";

    public void Configure(EntityTypeBuilder<JobLogChunk> b)
    {
        b.ToTable("job_log_chunks");
        b.HasKey(c => c.Id);
        b.Ignore(c => c.End);
        b.HasOne<Job>().WithMany().HasForeignKey(c => c.JobId).OnDelete(DeleteBehavior.Cascade);
        // One chunk per offset: a retried POST of the same chunk is recognised, not appended twice.
        b.HasIndex(c => new { c.JobId, c.Offset }).IsUnique().HasDatabaseName(OffsetIndex);
    }
}
