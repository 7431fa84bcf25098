using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace EphemeralCI.Messaging;

/// <summary>
/// A message waiting to be published, written in the same transaction as the state change that
/// caused it. MassTransit's EF outbox package is not served by our registry, so this is ours.
/// </summary>
public sealed class OutboxMessage
{
    public long Id { get; set; }
    /// <summary>Becomes the MassTransit MessageId, so consumers can deduplicate redeliveries.</summary>
    public Guid MessageId { get; set; }
    public required string MessageType { get; set; }
    public required string Body { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? SentAt { get; set; }
    public int Attempts { get; set; }
    public string? LastError { get; set; }
    /// <summary>
    /// The W3C <c>traceparent</c> of the work that staged the message (a job's request or consumer), so
    /// the publish, however much later, continues that trace: one trace per job across the modules.
    /// </summary>
    public string? TraceParent { get; set; }
}

public interface IOutboxDbContext
{
    DbSet<OutboxMessage> OutboxMessages { get; }
}

public sealed class OutboxMessageConfiguration : IEntityTypeConfiguration<OutboxMessage>
{
    public void Configure(EntityTypeBuilder<OutboxMessage> b)
    {
        b.ToTable("outbox_messages");
        b.HasKey(m => m.Id);
        b.Property(m => m.MessageType).HasMaxLength(512);
        b.Property(m => m.LastError).HasMaxLength(2048);
        b.Property(m => m.TraceParent).HasMaxLength(JobTrace.MaxLength);
        b.HasIndex(m => m.MessageId).IsUnique();
        // The dispatcher scans unsent rows in order.
        b.HasIndex(m => new { m.SentAt, m.Id });
    }
}
