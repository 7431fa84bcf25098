using EphemeralCI.RunnerTemplates;
using System.Collections.Concurrent;
using System.Runtime.Versioning;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;

namespace EphemeralCI.Provisioner.Scheduling;

/// <summary>
/// Local sandboxes started ahead of demand for templates with <c>warmPool: N</c>: bubblewrap, the
/// cgroup, the relay and the agent are up, the agent waiting on its stdin for a job's token. The
/// scheduler takes one instead of starting cold; each serves exactly one job and is then destroyed
/// like any runner (never reused), and the pool starts a replacement. A warm sandbox holds no job,
/// token or workspace content until it is taken, so it does not count against concurrency limits.
/// Off by default (N = 0).
/// </summary>
[UnsupportedOSPlatform("windows")]
public sealed class WarmPool(RunnerTemplateCatalog templates, LocalSandboxBackend backend, ILogger<WarmPool> logger) : BackgroundService
{
    private static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(5);
    private readonly ConcurrentDictionary<string, ConcurrentQueue<Guid>> _ready = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _wake = new(0);

    /// <summary>The warm sandboxes waiting for a job of this template (ids), oldest first.</summary>
    public IReadOnlyList<Guid> Ready(string template) => _ready.TryGetValue(template, out var q) ? [.. q] : [];

    /// <summary>Takes a warm sandbox of the template for one job, or null (none ready, or the template has no pool).</summary>
    public Guid? TryTake(string? templateName)
    {
        if (templateName is null || !_ready.TryGetValue(templateName, out var queue)) return null;
        while (queue.TryDequeue(out var sandboxId))
        {
            Refill();
            if (backend.IsWarmAlive(sandboxId)) return sandboxId;
            _ = DiscardAsync(sandboxId);
        }
        return null;
    }

    /// <summary>Gives the job the warm sandbox; null if it died meanwhile (it is destroyed: start cold).</summary>
    public async Task<RunnerHandle?> AssignAsync(Guid sandboxId, RunnerLaunch launch, CancellationToken ct)
    {
        try
        {
            return await backend.AssignWarmAsync(sandboxId, launch, ct);
        }
        catch (RunnerStartException ex)
        {
            logger.LogWarning("Warm sandbox {SandboxId} could not take job {JobId} ({Reason}); starting cold", sandboxId, launch.JobId, ex.Message);
            return null;
        }
    }

    private void Refill()
    {
        if (_wake.CurrentCount == 0) _wake.Release();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // A background pass is not a job's work: no root trace of its own (the Aspire dashboard drowned in them).
        using var quiet = SuppressInstrumentationScope.Begin();
        var pools = templates.Names
            .Select(name => (Name: name, Template: templates.TryGet(name, out var t) ? t : null))
            .Where(p => p.Template is { WarmPool: > 0 } && string.Equals(p.Template.Backend, backend.Name, StringComparison.OrdinalIgnoreCase))
            .ToList();
        if (pools.Count == 0) return;
        if (backend.MissingPrerequisite() is { } missing)
        {
            logger.LogError("Warm pools stay empty: {Problem}", missing);
            return;
        }
        foreach (var (name, _) in pools) _ready[name] = new ConcurrentQueue<Guid>();
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                foreach (var (name, template) in pools)
                {
                    var queue = _ready[name];
                    // Dead ones (killed from outside) are destroyed and replaced.
                    foreach (var dead in queue.Where(id => !backend.IsWarmAlive(id)).ToList())
                    {
                        if (Remove(queue, dead)) await DiscardAsync(dead);
                    }
                    while (queue.Count < template!.WarmPool && !stoppingToken.IsCancellationRequested)
                    {
                        try
                        {
                            queue.Enqueue(await backend.StartWarmAsync(template, stoppingToken));
                        }
                        catch (RunnerStartException ex)
                        {
                            logger.LogError("Warm sandbox for template {Template} failed to start: {Reason}", name, ex.Message);
                            break;
                        }
                    }
                }
                await _wake.WaitAsync(CheckInterval, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            // Shutdown: nothing of the pool outlives the provisioner.
            foreach (var queue in _ready.Values)
            {
                while (queue.TryDequeue(out var id)) await DiscardAsync(id);
            }
        }
    }

    private static bool Remove(ConcurrentQueue<Guid> queue, Guid id)
    {
        // Rare (a warm sandbox died): rebuild the queue without it.
        var found = false;
        var count = queue.Count;
        for (var i = 0; i < count && queue.TryDequeue(out var item); i++)
        {
            if (item == id) found = true;
            else queue.Enqueue(item);
        }
        return found;
    }

    private async Task DiscardAsync(Guid sandboxId)
    {
        try
        {
            await backend.DestroyWarmAsync(sandboxId, CancellationToken.None);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogError(ex, "Could not destroy warm sandbox {SandboxId}", sandboxId);
        }
    }
}
