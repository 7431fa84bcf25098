using EphemeralCI.Persistence;
using EphemeralCI.Provisioner.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Provisioner.Ownership;

/// <summary>Reads this installation's id at start-up, making it on the very first start. Runs after the migrator, before the reconciler.</summary>
public sealed class InstallationLoader(IServiceScopeFactory scopes, Installation installation, TimeProvider clock, ILogger<InstallationLoader> logger)
    : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
        var row = await db.Installation.AsNoTracking().FirstOrDefaultAsync(i => i.Key == InstallationRecord.SingletonKey, cancellationToken);
        if (row is null)
        {
            db.Installation.Add(new InstallationRecord { Id = Guid.NewGuid(), CreatedAt = clock.GetUtcNow() });
            try
            {
                await db.SaveChangesAsync(cancellationToken);
            }
            catch (DbUpdateException ex) when (ex.IsUniqueViolation())
            {
                // Another replica's first start won the race: its id is ours.
            }
            db.ChangeTracker.Clear();
            row = await db.Installation.AsNoTracking().FirstAsync(i => i.Key == InstallationRecord.SingletonKey, cancellationToken);
        }
        installation.Set(row.Id);
        logger.LogInformation("Provisioner installation {InstallationId}", row.Id);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
