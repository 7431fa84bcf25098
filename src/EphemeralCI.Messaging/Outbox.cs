using System.Text.Json;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Messaging;

public static class Outbox
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>
    /// Stages <paramref name="message"/> in the context; it is published only if the caller's
    /// SaveChanges (the same transaction as the state change) succeeds.
    /// </summary>
    /// <param name="messageId">The message's id (default: a new one). A message that may be announced more
    /// than once should pass an id of its own, with <see cref="AddToOutboxOnceAsync"/>.</param>
    public static void AddToOutbox<TMessage>(this IOutboxDbContext db, TMessage message, TimeProvider? clock = null, Guid? messageId = null)
        where TMessage : class
    {
        db.OutboxMessages.Add(new OutboxMessage
        {
            MessageId = messageId ?? Guid.NewGuid(),
            MessageType = typeof(TMessage).AssemblyQualifiedName!,
            Body = JsonSerializer.Serialize(message, Json),
            CreatedAt = (clock ?? TimeProvider.System).GetUtcNow(),
            TraceParent = JobTrace.Current(),
        });
    }

    /// <summary>
    /// Stages <paramref name="message"/> under <paramref name="messageId"/> unless a row with that id is
    /// already there. With <paramref name="sendAgain"/>, a row already sent is sent once more — under
    /// the same id, so a receiver that has it already finds it a duplicate — and one that is still
    /// pending is left to go out as it is. True if anything was staged.
    /// </summary>
    public static async Task<bool> AddToOutboxOnceAsync<TMessage>(this IOutboxDbContext db, Guid messageId, TMessage message, TimeProvider clock, bool sendAgain, CancellationToken ct)
        where TMessage : class
    {
        var existing = await db.OutboxMessages.FirstOrDefaultAsync(m => m.MessageId == messageId, ct);
        if (existing is null)
        {
            db.AddToOutbox(message, clock, messageId);
            return true;
        }
        if (!sendAgain || existing.SentAt is null) return false;
        existing.SentAt = null;
        existing.CreatedAt = clock.GetUtcNow();
        existing.TraceParent = JobTrace.Current();
        return true;
    }
}
