using EphemeralCI.SecretsBroker.Audit;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace EphemeralCI.SecretsBroker.Infrastructure.Configurations;

/// <summary>The audit log. Append-only: the migration adds a trigger that rejects UPDATE, DELETE and TRUNCATE.</summary>
internal sealed class AuditEntryConfiguration : IEntityTypeConfiguration<AuditEntry>
{
    /// <summary>One <c>token.revoked</c> line per job attempt, however many broker replicas handle the same RunnerFinished.</summary>
    public const string OneRevocationPerAttemptIndex = "ux_audit_entries_token_revoked";

    public void Configure(EntityTypeBuilder<AuditEntry> b)
    {
        b.ToTable("audit_entries");
        b.HasKey(e => e.Id);
        b.Property(e => e.Id).UseIdentityAlwaysColumn();
        b.Property(e => e.Actor).HasMaxLength(128);
        b.Property(e => e.Action).HasMaxLength(64);
        b.Property(e => e.SecretName).HasMaxLength(128);
        b.Property(e => e.Repository).HasMaxLength(256);
        b.Property(e => e.Ref).HasMaxLength(256);
        b.Property(e => e.TokenId).HasMaxLength(64);
        b.Property(e => e.Detail).HasMaxLength(2048);
        b.HasIndex(e => e.At);
        b.HasIndex(e => e.JobId);
        b.HasIndex(e => e.SecretName);
        b.HasIndex(e => new { e.JobId, e.Attempt }).IsUnique().HasFilter($"action = '{AuditActions.TokenRevoked}'")
            .HasDatabaseName(OneRevocationPerAttemptIndex);
    }
}
