using EphemeralCI.Persistence;
using EphemeralCI.SecretsBroker.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;

namespace EphemeralCI.SecretsBroker.Infrastructure;

/// <summary>
/// Applies migrations (waiting while the database is not reachable yet) and makes sure a signing key exists before
/// the broker takes requests; then checks every few minutes whether the signing key is due for rotation.
/// </summary>
public sealed class SecretsBrokerStartup(IServiceScopeFactory scopes, SigningKeyRing ring, TimeProvider clock, ILogger<SecretsBrokerStartup> logger) : BackgroundService
{
    private static readonly TimeSpan RotationCheck = TimeSpan.FromMinutes(5);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await ModuleDatabaseMigration.MigrateAsync<SecretsDbContext>(scopes, clock, logger, (_, ct) => ring.RotateIfDueAsync(ct), cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The rotation check is not a job's work: no root trace per tick.
        using var quiet = SuppressInstrumentationScope.Begin();
        using var timer = new PeriodicTimer(RotationCheck);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await ring.RotateIfDueAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning("Signing key rotation check failed, will retry: {Error}", ex.Message);
            }
        }
    }
}
