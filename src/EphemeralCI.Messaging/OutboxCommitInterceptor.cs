using EphemeralCI.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.ChangeTracking;

namespace EphemeralCI.Messaging;

/// <summary>
/// The one place that wakes an outbox's dispatcher: after the commit of a SaveChanges that staged rows
/// to send (added, or a sent row marked to go again). Code that changes state only stages its
/// messages (<see cref="Outbox.AddToOutbox{TMessage}"/>); registered by <c>AddOutboxDispatcher</c>.
/// </summary>
public sealed class OutboxCommitInterceptor<TContext>(OutboxSignal<TContext> signal) : AfterCommitInterceptor
    where TContext : DbContext
{
    protected override bool Concerns(ChangeTracker changes) =>
        changes.Entries<OutboxMessage>().Any(e => e.State == EntityState.Added || (e.State == EntityState.Modified && e.Entity.SentAt is null));

    protected override void OnCommitted() => signal.Notify();
}
