using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Scheduling;
using MassTransit;

namespace EphemeralCI.Provisioner.Consumers;

/// <summary>The pipeline's entry: RunJob from the intake (at least once) → deduplicator → scheduler → backend.</summary>
public sealed class RunJobConsumer(RunnerDeduplicator deduplicator) : IConsumer<RunJob>
{
    public Task Consume(ConsumeContext<RunJob> context) => deduplicator.HandleAsync(context.Message, context.CancellationToken);
}
