using EphemeralCI.SecretsBroker.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.SecretsBroker.Infrastructure;

/// <summary>
/// Applies migrations (retrying while Postgres comes up) and makes sure a signing key exists before
/// the broker takes requests; then checks every few minutes whether the signing key is due for rotation.
/// </summary>
public sealed class SecretsBrokerStartup(IServiceScopeFactory scopes, SigningKeyRing ring, ILogger<SecretsBrokerStartup> logger) : BackgroundService
{
    private const int MaxAttempts = 30;
    private static readonly TimeSpan RotationCheck = TimeSpan.FromMinutes(5);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                await scope.ServiceProvider.GetRequiredService<SecretsDbContext>().Database.MigrateAsync(cancellationToken);
                await ring.RotateIfDueAsync(cancellationToken);
                break;
            }
            catch (Exception ex) when (attempt < MaxAttempts && !cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning("secretsdb not ready (attempt {Attempt}/{Max}): {Error}", attempt, MaxAttempts, ex.Message);
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(attempt, 5)), cancellationToken);
            }
        }
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
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
