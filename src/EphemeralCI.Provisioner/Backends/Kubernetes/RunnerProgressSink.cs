using EphemeralCI.Contracts.Messages;
using EphemeralCI.Messaging;
using EphemeralCI.Provisioner.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace EphemeralCI.Provisioner.Backends.Kubernetes;

/// <summary>Where observed runner progress goes.</summary>
public interface IRunnerProgressSink
{
    Task ReportAsync(RunnerProgress progress, CancellationToken ct);
}

/// <summary>Through the provisioner's outbox to the intake, like every other message of the provisioner.</summary>
public sealed class OutboxRunnerProgressSink(IServiceScopeFactory scopes, TimeProvider clock) : IRunnerProgressSink
{
    public async Task ReportAsync(RunnerProgress progress, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        db.AddToOutbox(progress, clock);
        await db.SaveChangesAsync(ct);
    }
}
