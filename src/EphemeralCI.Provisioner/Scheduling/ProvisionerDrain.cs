using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Ownership;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Provisioner.Scheduling;

/// <summary>What an instance is doing: whether it drains, and its runners alive and jobs waiting.</summary>
public sealed record ProvisionerStatus(string Instance, bool Draining, int Running, int Waiting, int WaitingForAnyInstance);

/// <summary>
/// Drain (before an upgrade, a node's maintenance, a scale-down): this instance starts no new runner and its
/// running ones finish as usual. A RunJob it receives is claimed as waiting for any instance (the limiter), the
/// jobs already waiting here are handed to any instance, and its pump starts nothing; another instance's pump
/// starts them, or this one's after Resume. Per process and in memory: a restarted process is not draining.
/// </summary>
public sealed class ProvisionerDrain(IServiceScopeFactory scopes, ProvisionerInstance instance, RunnerSlots slots, ILogger<ProvisionerDrain> logger)
{
    private volatile bool _draining;

    public bool Draining => _draining;

    public string Reason => $"provisioner instance '{instance.Name}' is draining";

    public async Task<ProvisionerStatus> DrainAsync(CancellationToken ct)
    {
        _draining = true;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
            var name = instance.Name;
            var handedOver = await db.Runners.Where(r => r.State == RunnerState.Waiting && r.Instance == name)
                .ExecuteUpdateAsync(u => u.SetProperty(r => r.Instance, (string?)null), ct);
            logger.LogInformation("Provisioner instance {Instance} drains: no new runners; {Count} waiting job(s) handed to any instance", name, handedOver);
        }
        return await StatusAsync(ct);
    }

    public async Task<ProvisionerStatus> ResumeAsync(CancellationToken ct)
    {
        _draining = false;
        logger.LogInformation("Provisioner instance {Instance} resumes starting runners", instance.Name);
        slots.Changed(); // the pump looks at what waits now
        return await StatusAsync(ct);
    }

    public async Task<ProvisionerStatus> StatusAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        var name = instance.Name;
        var running = await db.Runners.CountAsync(r => r.Instance == name && r.FinishedAt == null
            && (r.State == RunnerState.Provisioning || r.State == RunnerState.Running), ct);
        var waiting = await db.Runners.CountAsync(r => r.State == RunnerState.Waiting && r.Instance == name, ct);
        var anyInstance = await db.Runners.CountAsync(r => r.State == RunnerState.Waiting && r.Instance == null, ct);
        return new ProvisionerStatus(name, _draining, running, waiting, anyInstance);
    }
}
