using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Provisioner.Infrastructure;

/// <summary>
/// Applies migrations before anything else of the module starts (hosted services start in order,
/// and this one is registered before the reconciler and the bus), retrying while Postgres comes up.
/// </summary>
public sealed class ProvisionerDbMigrator(IServiceScopeFactory scopes, ILogger<ProvisionerDbMigrator> logger) : IHostedService
{
    private const int MaxAttempts = 30;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<ProvisionerDbContext>();
                await db.Database.MigrateAsync(cancellationToken);
                return;
            }
            catch (Exception ex) when (attempt < MaxAttempts && !cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning("provisionerdb not ready (attempt {Attempt}/{Max}): {Error}", attempt, MaxAttempts, ex.Message);
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(attempt, 5)), cancellationToken);
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
