using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Messaging;

/// <summary>
/// Holds the host's start until the bus is up, bounded. MassTransit starts the bus in the background, and
/// ASP.NET Core starts serving once every hosted service has started: a /health asked in between (the
/// AppHost asks from the first moment) found "masstransit-bus: Not ready: not started", which the health
/// check service logs as an error, on every healthy first start. Waiting here (registered after MassTransit's
/// hosted service) makes the first answer the true one. A broker that is down only delays serving by the
/// bound: jobs are still accepted into the outbox, and /health says what is missing.
/// </summary>
internal sealed class BusStartWait(IBusControl bus, ILogger<BusStartWait> logger) : IHostedService
{
    internal static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(Bound);
        try
        {
            await bus.WaitForHealthStatus(BusHealthStatus.Healthy, bounded.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("The bus is not up after {Bound}; serving without it (messages wait in the outbox)", Bound);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
