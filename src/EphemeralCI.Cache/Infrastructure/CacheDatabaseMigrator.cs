using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Cache.Infrastructure;

/// <summary>Applies the cache's migrations before the host takes requests, retrying while the database comes up.</summary>
public sealed partial class CacheDatabaseMigrator(IServiceScopeFactory scopes, ILogger<CacheDatabaseMigrator> logger) : IHostedService
{
    private const int MaxAttempts = 30;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                await scope.ServiceProvider.GetRequiredService<CacheDbContext>().Database.MigrateAsync(cancellationToken);
                return;
            }
            catch (Exception e) when (attempt < MaxAttempts && !cancellationToken.IsCancellationRequested)
            {
                LogNotReady(logger, attempt, MaxAttempts, e.Message);
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(attempt, 5)), cancellationToken);
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 30, Level = LogLevel.Warning, Message = "cachedb not ready (attempt {Attempt}/{Max}): {Error}")]
    private static partial void LogNotReady(ILogger logger, int attempt, int max, string error);
}
