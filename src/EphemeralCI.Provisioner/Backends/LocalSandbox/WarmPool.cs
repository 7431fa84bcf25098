using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.RunnerTemplates;
using System.Runtime.Versioning;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>
/// Keeps local sandboxes started ahead of demand for templates with <c>warmPool: N</c>: bubblewrap,
/// the cgroup, the relay and the agent are up, the agent waiting on its stdin for a job's token. The
/// backend hands one to a job instead of starting cold (<see cref="LocalSandboxBackend.StartAsync"/>);
/// each serves exactly one job and is then destroyed like any runner (never reused), and this service
/// starts a replacement. A warm sandbox holds no job, token or workspace content until it is taken, so
/// it does not count against concurrency limits. Off by default (N = 0).
/// </summary>
[UnsupportedOSPlatform("windows")]
public sealed class WarmPool(RunnerTemplateCatalog templates, LocalSandboxBackend backend, ILogger<WarmPool> logger) : BackgroundService, IWarmPoolStatus
{
    private static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(5);

    /// <summary>The warm sandboxes waiting for a job of this template (ids), oldest first.</summary>
    public IReadOnlyList<Guid> Ready(string template) => backend.Warm.Ready(template);

    /// <summary>Every template of this backend with a warm pool, its size and how many sandboxes wait now.</summary>
    public IReadOnlyList<WarmPoolState> Current() =>
        [.. Pools().Select(p => new WarmPoolState(p.Name, backend.Name, p.Template.WarmPool, backend.Warm.Count(p.Name)))];

    private List<(string Name, RunnerTemplateDefinition Template)> Pools() =>
        [.. templates.Names
            .Select(name => (Name: name, Template: templates.TryGet(name, out var t) ? t : null))
            .Where(p => p.Template is { WarmPool: > 0 } && string.Equals(p.Template.Backend, backend.Name, StringComparison.OrdinalIgnoreCase))
            .Select(p => (p.Name, p.Template!))
            .OrderBy(p => p.Name, StringComparer.Ordinal)];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // A background pass is not a job's work: no root trace of its own (the Aspire dashboard drowned in them).
        using var quiet = SuppressInstrumentationScope.Begin();
        var pools = Pools();
        if (pools.Count == 0) return;
        if (backend.MissingPrerequisite() is { } missing)
        {
            logger.LogError("Warm pools stay empty: {Problem}", missing);
            return;
        }
        var warm = backend.Warm;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                foreach (var (name, template) in pools)
                {
                    // Dead ones (killed from outside) are destroyed and replaced.
                    foreach (var dead in warm.Ready(name).Where(id => !backend.IsWarmAlive(id)).ToList())
                    {
                        if (warm.Remove(name, dead)) await DiscardAsync(dead);
                    }
                    while (warm.Count(name) < template.WarmPool && !stoppingToken.IsCancellationRequested)
                    {
                        try
                        {
                            warm.Add(name, await backend.StartWarmAsync(template, stoppingToken));
                        }
                        catch (RunnerStartException ex)
                        {
                            logger.LogError("Warm sandbox for template {Template} failed to start: {Reason}", name, ex.Message);
                            break;
                        }
                    }
                }
                await warm.WaitForTakeAsync(CheckInterval, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            // Shutdown: nothing of the pool outlives the provisioner.
            foreach (var id in warm.TakeAll()) await DiscardAsync(id);
        }
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
