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
    public static void AddToOutbox<TMessage>(this IOutboxDbContext db, TMessage message, TimeProvider? clock = null)
        where TMessage : class
    {
        db.OutboxMessages.Add(new OutboxMessage
        {
            MessageId = Guid.NewGuid(),
            MessageType = typeof(TMessage).AssemblyQualifiedName!,
            Body = JsonSerializer.Serialize(message, Json),
            CreatedAt = (clock ?? TimeProvider.System).GetUtcNow(),
        });
    }
}
