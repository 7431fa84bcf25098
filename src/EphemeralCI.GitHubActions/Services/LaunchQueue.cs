using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.GitHubActions.Services;

/// <summary>Workflow job ids with work to do, so a webhook is answered at once and GitHub's calls happen after.</summary>
public sealed class LaunchQueue
{
    private readonly Channel<long> _ids = Channel.CreateUnbounded<long>(new UnboundedChannelOptions { SingleReader = false });

    // One pending refill is enough: a pass fills every pool to its target.
    private readonly Channel<bool> _refills = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    public void Enqueue(long workflowJobId) => _ids.Writer.TryWrite(workflowJobId);

    /// <summary>A warm runner left a pool (it took a workflow job): refill without waiting for the reconciler.</summary>
    public void RequestRefill() => _refills.Writer.TryWrite(true);

    internal ChannelReader<long> Reader => _ids.Reader;
    internal ChannelReader<bool> Refills => _refills.Reader;
}

/// <summary>Drains the <see cref="LaunchQueue"/> with a few workers; a failure is logged and left to the reconciler.</summary>
internal sealed class LaunchWorker(LaunchQueue queue, IServiceScopeFactory scopes, ILogger<LaunchWorker> logger) : BackgroundService
{
    private const int Workers = 4;

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(Enumerable.Range(0, Workers).Select(_ => DrainAsync(stoppingToken)).Append(RefillAsync(stoppingToken)));

    private async Task RefillAsync(CancellationToken ct)
    {
        await foreach (var _ in queue.Refills.ReadAllAsync(ct))
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                await scope.ServiceProvider.GetRequiredService<WarmRunnerPool>().PassAsync(ct);
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                logger.LogWarning("Refilling the warm runner pools failed: {Error}; the reconciler tries again", ex.Message);
            }
        }
    }

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
