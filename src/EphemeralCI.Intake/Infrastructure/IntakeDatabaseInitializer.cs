using EphemeralCI.Intake.Auth;
using EphemeralCI.Intake.Model;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using EphemeralCI.Persistence;

namespace EphemeralCI.Intake.Infrastructure;

/// <summary>
/// Brings the database to the current migration before anything else of the module starts
/// (registered ahead of the bus and the outbox dispatcher), waiting while it is not reachable yet;
/// then makes sure a first admin key exists and that the data-protection key ring opens with the configured secret.
/// </summary>
public sealed class IntakeDatabaseInitializer(
    IServiceProvider services,
    IServiceScopeFactory scopes,
    IOptions<IntakeOptions> options,
    TimeProvider clock,
    ILogger<IntakeDatabaseInitializer> logger) : IHostedService
{
    public const string BootstrapKeyName = "bootstrap-admin";

    public Task StartAsync(CancellationToken cancellationToken) =>
        ModuleDatabaseMigration.MigrateAsync<IntakeDbContext>(scopes, clock, logger, async (db, ct) =>
        {
            await EnsureBootstrapKeyAsync(db, ct);
            DataProtection.IntakeDataProtection.VerifyKeyRing(services, clock.GetUtcNow());
        }, cancellationToken);

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

}
