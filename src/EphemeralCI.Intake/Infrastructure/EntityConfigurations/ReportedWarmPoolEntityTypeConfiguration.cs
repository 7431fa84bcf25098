using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Model;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace EphemeralCI.Intake.Infrastructure.EntityConfigurations;

internal sealed class ReportedWarmPoolEntityTypeConfiguration : IEntityTypeConfiguration<ReportedWarmPool>
{
    public void Configure(EntityTypeBuilder<ReportedWarmPool> b)
    {
        b.ToTable("reported_warm_pools");
        // One row per instance and template: a newer report updates it in place.
        b.HasKey(p => new { p.Instance, p.Template });
        b.Property(p => p.Instance).HasMaxLength(WarmPoolReport.MaxInstanceLength);
        b.Property(p => p.Template).HasMaxLength(WarmPoolReport.MaxTemplateLength);
        b.Property(p => p.Backend).HasMaxLength(WarmPoolReport.MaxBackendLength);
        // Pruning finds the rows long stale.
        b.HasIndex(p => p.FreshUntil);
    }
}
