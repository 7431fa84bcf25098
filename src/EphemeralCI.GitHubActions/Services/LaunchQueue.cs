using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.GitHubActions.Services;

/// <summary>Workflow job ids with work to do, so a webhook is answered at once and GitHub's calls happen after.</summary>
public sealed class LaunchQueue
{
    private readonly Channel<long> _ids = Channel.CreateUnbounded<long>(new UnboundedChannelOptions { SingleReader = false });

    public void Enqueue(long workflowJobId) => _ids.Writer.TryWrite(workflowJobId);

    internal ChannelReader<long> Reader => _ids.Reader;
}

/// <summary>Drains the <see cref="LaunchQueue"/> with a few workers; a failure is logged and left to the reconciler.</summary>
internal sealed class LaunchWorker(LaunchQueue queue, IServiceScopeFactory scopes, ILogger<LaunchWorker> logger) : BackgroundService
{
    private const int Workers = 4;

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(Enumerable.Range(0, Workers).Select(_ => DrainAsync(stoppingToken)));

    private async Task DrainAsync(CancellationToken ct)
    {
        await foreach (var id in queue.Reader.ReadAllAsync(ct))
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                await scope.ServiceProvider.GetRequiredService<RunnerLauncher>().HandleAsync(id, ct);
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                logger.LogWarning("Workflow job {WorkflowJobId}: {Error}; the reconciler tries again", id, ex.Message);
            }
        }
    }
}
