using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EphemeralCI.Persistence;

/// <summary>
/// Brings a module's database to its current migration at start-up, before anything else of the
/// module runs (hosted services start in registration order), then does the module's own first-start
/// work (a bootstrap key, a signing key). While the database is unreachable (Postgres still starting,
/// a restart, a network blip) it waits and tries again, for as long as it takes; anything else — a
/// failing migration, bad configuration — stops the host at once instead of being retried for minutes.
/// </summary>
public static class ModuleDatabaseMigration
{
    public static async Task MigrateAsync<TContext>(
        IServiceScopeFactory scopes,
        TimeProvider clock,
        ILogger logger,
        Func<TContext, CancellationToken, Task>? afterMigration,
        CancellationToken ct) where TContext : DbContext
    {
        var delay = TimeSpan.FromSeconds(1);
        while (true)
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<TContext>();
                await CreateHistoryTableAsync(db, ct);
                await db.Database.MigrateAsync(ct);
                if (afterMigration is not null) await afterMigration(db, ct);
                return;
            }
            catch (Exception ex) when (IsUnreachable(ex) && !ct.IsCancellationRequested)
            {
                logger.LogWarning("The database of {Context} is not reachable yet ({Reason}); retrying in {Delay}",
                    typeof(TContext).Name, ex.GetBaseException().Message, delay);
                await Task.Delay(delay, clock, ct);
                delay = TimeSpan.FromSeconds(Math.Min(delay.TotalSeconds * 2, 10));
            }
        }
    }

    /// <summary>
    /// Npgsql's migrator cannot tell whether the history table exists (search_path), so on a fresh database
    /// it reads the table anyway, and EF logs the expected "relation does not exist" as an error
    /// ("Failed executing DbCommand", npgsql/efcore.pg#3407): every service showed a red badge on its
    /// first start. Creating the table first (the migrator's own idempotent script) means the read finds it.
    /// </summary>
    private static async Task CreateHistoryTableAsync(DbContext db, CancellationToken ct)
    {
        if (db.Database.ProviderName?.Contains("Npgsql", StringComparison.Ordinal) != true) return;
        var script = db.GetService<IHistoryRepository>().GetCreateIfNotExistsScript();
        try
        {
            await db.Database.ExecuteSqlRawAsync(script, ct);
        }
        catch (PostgresException pg) when (pg.SqlState is PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.DuplicateTable)
        {
            // Another replica created it at the same moment: that is what we wanted.
        }
    }

    /// <summary>Connection trouble and "starting up" are worth waiting for; a failing migration is not.</summary>
    public static bool IsUnreachable(Exception ex)
    {
        for (var e = ex; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case PostgresException pg:
                    return pg.SqlState.StartsWith("08", StringComparison.Ordinal)   // connection exception
                        || pg.SqlState.StartsWith("57P", StringComparison.Ordinal)  // shutting down, cannot connect now
                        || pg.SqlState.StartsWith("53", StringComparison.Ordinal);  // too many connections, out of resources
                case SqliteException sqlite:
                    return sqlite.SqliteErrorCode is 5 or 6; // SQLITE_BUSY, SQLITE_LOCKED: another process holds the file
                case NpgsqlException or TimeoutException or System.Net.Sockets.SocketException:
                    return true;
            }
        }
        return false;
    }
}

/// <summary>A module whose database needs nothing at start-up beyond its migrations.</summary>
public sealed class ModuleDatabaseMigrator<TContext>(IServiceScopeFactory scopes, TimeProvider clock, ILogger<ModuleDatabaseMigrator<TContext>> logger)
    : IHostedService where TContext : DbContext
{
    public Task StartAsync(CancellationToken cancellationToken) =>
        ModuleDatabaseMigration.MigrateAsync<TContext>(scopes, clock, logger, null, cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
