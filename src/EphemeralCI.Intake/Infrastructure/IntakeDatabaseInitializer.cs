using EphemeralCI.Intake.Auth;
using EphemeralCI.Intake.Model;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using EphemeralCI.Persistence;

namespace EphemeralCI.Intake.Infrastructure;

/// <summary>
/// Brings the database to the current migration before anything else of the module starts
/// (registered ahead of the bus and the outbox dispatcher), waiting for Postgres while it is not
/// up yet; then makes sure a first admin key exists.
/// </summary>
public sealed class IntakeDatabaseInitializer(
    IServiceScopeFactory scopes,
    IOptions<IntakeOptions> options,
    TimeProvider clock,
    ILogger<IntakeDatabaseInitializer> logger) : IHostedService
{
    public const string BootstrapKeyName = "bootstrap-admin";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromSeconds(1);
        while (true)
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<IntakeDbContext>();
                await db.Database.MigrateAsync(cancellationToken);
                await EnsureBootstrapKeyAsync(db, cancellationToken);
                return;
            }
            catch (Exception ex) when (IsUnreachable(ex) && !cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning("The intake database is not reachable yet ({Reason}); retrying in {Delay}", ex.GetBaseException().Message, delay);
                await Task.Delay(delay, clock, cancellationToken);
                delay = TimeSpan.FromSeconds(Math.Min(delay.TotalSeconds * 2, 10));
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task EnsureBootstrapKeyAsync(IntakeDbContext db, CancellationToken ct)
    {
        if (await db.ApiKeys.AnyAsync(ct)) return;

        var configured = options.Value.BootstrapAdminKey;
        string key;
        if (string.IsNullOrWhiteSpace(configured))
        {
            key = ApiKeySecret.Generate();
        }
        else if (ApiKeySecret.IsWellFormed(configured.Trim()))
        {
            key = configured.Trim();
        }
        else
        {
            throw new InvalidOperationException(
                $"Configuration setting '{IntakeOptions.Section}:BootstrapAdminKey' is not a valid API key: " +
                $"it must be '{ApiKeySecret.Marker}' followed by base64url of at least {ApiKeySecret.EntropyBytes} random bytes.");
        }

        db.ApiKeys.Add(new ApiKey
        {
            Id = Guid.CreateVersion7(),
            Name = BootstrapKeyName,
            Prefix = ApiKeySecret.PrefixOf(key),
            Hash = ApiKeySecret.Hash(key),
            Scopes = [ApiKeyScopes.Admin],
            CreatedAt = clock.GetUtcNow(),
        });
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException ex) when (ex.IsUniqueViolation())
        {
            return; // another instance bootstrapped the same configured key first
        }

        if (string.IsNullOrWhiteSpace(configured))
        {
            // Straight to stdout, never through ILogger: log pipelines are shipped and kept, this key must not be.
            Console.WriteLine($"EphemeralCI intake: no API keys existed, so an admin key was created. It is shown only this once:{Environment.NewLine}{key}");
        }
        else
        {
            logger.LogInformation("Created the bootstrap admin API key from configuration (prefix {Prefix})", ApiKeySecret.PrefixOf(key));
        }
    }

    /// <summary>Connection trouble and "starting up" are worth waiting for; a failing migration is not.</summary>
    internal static bool IsUnreachable(Exception ex)
    {
        for (var e = ex; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case PostgresException pg:
                    return pg.SqlState.StartsWith("08", StringComparison.Ordinal)   // connection exception
                        || pg.SqlState.StartsWith("57P", StringComparison.Ordinal)  // shutting down, cannot connect now
                        || pg.SqlState.StartsWith("53", StringComparison.Ordinal);  // too many connections, out of resources
                case NpgsqlException or TimeoutException or System.Net.Sockets.SocketException:
                    return true;
            }
        }
        return false;
    }
}
