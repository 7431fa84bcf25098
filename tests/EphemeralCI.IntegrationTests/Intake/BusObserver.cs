using System.Collections.Concurrent;
using MassTransit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>Counts finished consumes per MessageId, so a test knows a delivery was handled (not just sent).</summary>
public sealed class ConsumeCounter : IConsumeObserver
{
    private readonly ConcurrentDictionary<Guid, int> _consumed = new();

    public int Count(Guid messageId) => _consumed.GetValueOrDefault(messageId);

    public Task PostConsume<T>(ConsumeContext<T> context) where T : class
    {
        if (context.MessageId is { } id) _consumed.AddOrUpdate(id, 1, (_, n) => n + 1);
        return Task.CompletedTask;
    }

    public Task PreConsume<T>(ConsumeContext<T> context) where T : class => Task.CompletedTask;
    public Task ConsumeFault<T>(ConsumeContext<T> context, Exception exception) where T : class => Task.CompletedTask;
}
