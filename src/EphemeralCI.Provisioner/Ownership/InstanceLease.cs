using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry;

namespace EphemeralCI.Provisioner.Ownership;

/// <summary>
/// Takes this instance's lease at start-up (after the installation is known, before the reconciler) and
/// renews it while the process lives. A name whose lease another process keeps renewing is refused (after
/// one lease duration): two processes under one name would each take the other's runners for their own.
/// A previous process of this name that is gone is succeeded at once when its pid is dead on this very
/// machine, else once its lease has run out.
/// </summary>
public sealed class InstanceLease(
    IServiceScopeFactory scopes,
    ProvisionerInstance instance,
    IOptions<InstanceOptions> options,
    TimeProvider clock,
    ILogger<InstanceLease> logger) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var name = options.Value.ResolvedName();
        // A lease that looks held may be a dead process's whose pid was reused at once, or a container
        // restarted under another pid: wait for it to run out. One that is renewed meanwhile is a live twin.
        var refuseAt = clock.GetUtcNow() + options.Value.LeaseDuration + options.Value.HeartbeatInterval;
        while (!await TryTakeAsync(name, refuseIfHeld: clock.GetUtcNow() >= refuseAt, cancellationToken))
        {
            await Task.Delay(options.Value.HeartbeatInterval, clock, cancellationToken);
        }
        instance.Set(name);
        logger.LogInformation("Provisioner instance {Instance}", name);
        await base.StartAsync(cancellationToken);
    }

    /// <summary>Takes the lease of <paramref name="name"/>; false (or, when <paramref name="refuseIfHeld"/>, an exception) while another process holds it.</summary>
    private async Task<bool> TryTakeAsync(string name, bool refuseIfHeld, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        var now = clock.GetUtcNow();
        var row = await db.Instances.FirstOrDefaultAsync(i => i.Name == name, ct);
        if (row is null)
        {
            db.Instances.Add(new InstanceRecord
            {
                Name = name, Incarnation = instance.Incarnation, Host = System.Environment.MachineName,
                ProcessId = System.Environment.ProcessId, StartedAt = now, HeartbeatAt = now,
            });
        }
        else
        {
            if (HeldByAnother(row, now))
            {
                if (!refuseIfHeld)
                {
                    logger.LogInformation("The lease of provisioner instance {Instance} is held by process {Pid} on {Host} (heartbeat {Heartbeat:O}); waiting for it to run out",
                        name, row.ProcessId, row.Host, row.HeartbeatAt);
                    return false;
                }
                throw new InvalidOperationException(
                    $"Provisioner instance '{name}' is already running (process {row.ProcessId} on {row.Host}, heartbeat {row.HeartbeatAt:O}). " +
                    $"Give each provisioner on this database its own {InstanceOptions.Section}:Name.");
            }
            row.Incarnation = instance.Incarnation;
            row.Host = System.Environment.MachineName;
            row.ProcessId = System.Environment.ProcessId;
            row.StartedAt = now;
            row.HeartbeatAt = now;
        }
        // A concurrent claim of the same name fails one of the two here (unique name, or the incarnation token).
        await db.SaveChangesAsync(ct);
        return true;
    }

    private bool HeldByAnother(InstanceRecord row, DateTimeOffset now)
    {
        if (row.HeartbeatAt + options.Value.LeaseDuration <= now) return false;
        // Restarted on the same machine right after a crash: the old process is provably gone.
        if (row.Host == System.Environment.MachineName && !OperatingSystem.IsWindows() && !ProcessTree.IsAlive(row.ProcessId)) return false;
        return !(row.Host == System.Environment.MachineName && row.ProcessId == System.Environment.ProcessId);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var quiet = SuppressInstrumentationScope.Begin();
        using var timer = new PeriodicTimer(options.Value.HeartbeatInterval, clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await using var scope = scopes.CreateAsyncScope();
                    var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
                    var renewed = await db.Instances
                        .Where(i => i.Name == instance.Name && i.Incarnation == instance.Incarnation)
                        .ExecuteUpdateAsync(s => s.SetProperty(i => i.HeartbeatAt, clock.GetUtcNow()), stoppingToken);
                    if (renewed == 0)
                    {
                        logger.LogCritical("Provisioner instance {Instance} lost its lease to another process of the same name", instance.Name);
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The database is briefly away: the next tick renews (the lease outlasts several missed beats).
                    logger.LogWarning("Could not renew the lease of provisioner instance {Instance}: {Error}", instance.Name, ex.Message);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// A graceful stop (a rolling upgrade, a scale-down) releases the lease rather than letting it run out,
    /// so a live instance adopts this one's waiting jobs and takes over its Kubernetes runners' watch at its
    /// next pass, not a lease duration later. Runs last of the provisioner's services (they stop in reverse
    /// order of start): the bus has stopped taking jobs and the supervisor has let go of its runners.
    /// </summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (!instance.IsKnown) return;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
            await db.Instances
                .Where(i => i.Name == instance.Name && i.Incarnation == instance.Incarnation)
                .ExecuteUpdateAsync(s => s.SetProperty(i => i.HeartbeatAt, DateTimeOffset.UnixEpoch), cancellationToken);
            logger.LogInformation("Provisioner instance {Instance} released its lease", instance.Name);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The database is away: the lease runs out on its own.
            logger.LogWarning("Could not release the lease of provisioner instance {Instance}: {Error}", instance.Name, ex.Message);
        }
    }

    /// <summary>The instances, other than this one, whose lease has run out.</summary>
    public static async Task<List<string>> DeadInstancesAsync(ProvisionerDbContext db, ProvisionerInstance self, TimeSpan lease, DateTimeOffset now, CancellationToken ct)
    {
        var cutoff = now - lease;
        // Compared in memory: the all-in-one server's SQLite stores these times as ticks, and the list is a handful of rows.
        var all = await db.Instances.AsNoTracking().Select(i => new { i.Name, i.HeartbeatAt }).ToListAsync(ct);
        return [.. all.Where(i => i.Name != self.Name && i.HeartbeatAt <= cutoff).Select(i => i.Name)];
    }
}
