using EphemeralCI.SecretsBroker.Audit;
using EphemeralCI.Contracts.Admin;
using EphemeralCI.Attestations;
using EphemeralCI.JobTokens;
using EphemeralCI.Messaging;
using EphemeralCI.Persistence;
using EphemeralCI.SecretsBroker.Apis;
using EphemeralCI.SecretsBroker.Attestations;
using EphemeralCI.SecretsBroker.Consumers;
using EphemeralCI.SecretsBroker.Crypto;
using EphemeralCI.SecretsBroker.Identity;
using EphemeralCI.SecretsBroker.Infrastructure;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace EphemeralCI.SecretsBroker;

/*
 * The secrets broker: job identity in, the job's own secrets out, exactly once, never after the job.
 *
 *   provisioner ──POST /internal/v1/job-tokens──> JobIdentityIssuer ──(ES256, SigningKeyRing: kid, rotation)──> token
 *   anyone ──GET /.well-known/openid-configuration, /.well-known/jwks.json──> public keys
 *   runner ──POST /api/v1/secrets/exchange (token)──> JobTokenGate ───────────────> replay guard (once) ─> SecretStore
 *                                                      (signature, iss, aud, exp;  (ITokenReplayGuard)  (policy: repo/ref/env,
 *                                                       revoked? IJobRevocationList)                      EnvelopeCipher opens)
 *   RabbitMQ ──RunnerFinished──> RunnerFinishedConsumer ──> IJobRevocationList
 *   admin ──/api/v1/admin/secrets, /keys/rewrap, /audit──> SecretStore / audit_entries (append-only)
 *   intake ──POST /internal/v1/attestations──> BrokerAttestationSigner ──(+ secrets issued, from the audit; DSSE, ES256, the same ring)──> envelope
 */
public static class SecretsBrokerExtensions
{
    public const string DatabaseName = "secretsdb";

    /// <summary>Name of the Redis connection string (<c>ConnectionStrings:redis</c>).</summary>
    public const string RedisConnectionName = "redis";

    /// <summary>
    /// Everything the secrets broker needs, in one place. Registrations are additive so one process can
    /// compose this module with the others: a host (the embedded all-in-one server) that already
    /// registered a replay guard, a revocation list or a Redis connection keeps its own; without Redis
    /// the single-use and revocation marks stay in process.
    /// </summary>
    /// <param name="addMessaging">False when the host registers the bus itself; it must then call <see cref="AddSecretsBrokerConsumers"/>.</param>
    public static IHostApplicationBuilder AddSecretsBroker(this IHostApplicationBuilder builder, bool addMessaging = true)
    {
        var services = builder.Services;
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<SecretsBrokerOptions>().BindConfiguration(SecretsBrokerOptions.Section)
            .Validate(o => string.IsNullOrWhiteSpace(o.AdminTokenSha256) || System.Text.RegularExpressions.Regex.IsMatch(o.AdminTokenSha256.Trim(), "^[0-9a-fA-F]{64}$"),
                $"Configuration setting '{SecretsBrokerOptions.Section}:AdminTokenSha256' must be 64 hex digits (a SHA-256).")
            .ValidateOnStart();

        builder.AddModuleDbContext<SecretsDbContext>(DatabaseName, o => o.UseSnakeCaseNamingConvention());
        services.AddSingleton<KeyRing>();
        services.AddSingleton<EnvelopeCipher>();
        services.AddScoped<SecretStore>();
        // Read-only: the secret list and audit trail for the all-in-one server's web UI (admin keys only).
        services.AddScoped<ISecretsAdminView, SecretsAdminView>();
        services.AddSingleton<SigningKeyRing>();
        services.AddSingleton<JobIdentityIssuer>();
        // Job attestations are signed by the same ring; in one process (the all-in-one server) the intake uses it directly.
        services.AddSingleton<BrokerAttestationSigner>();
        services.TryAddSingleton<IAttestationSigner>(sp => sp.GetRequiredService<BrokerAttestationSigner>());
        // Before AddJobTokens, so tokens are checked against this ring (no HTTP to itself) and an
        // all-in-one provisioner mints through it in process.
        services.TryAddSingleton<IJobTokenKeySource, BrokerKeySource>();
        services.TryAddSingleton<IJobTokenIssuer>(sp => sp.GetRequiredService<JobIdentityIssuer>());
        builder.AddJobTokens();

        var hasRedis = services.Any(d => d.ServiceType == typeof(IConnectionMultiplexer))
            || !string.IsNullOrWhiteSpace(builder.Configuration.GetConnectionString(RedisConnectionName));
        if (hasRedis && !services.Any(d => d.ServiceType == typeof(IConnectionMultiplexer))) builder.AddRedisClient(RedisConnectionName);
        if (hasRedis)
        {
            services.TryAddSingleton<ITokenReplayGuard, RedisTokenReplayGuard>();
        }
        else
        {
            services.TryAddSingleton<ITokenReplayGuard, InProcessTokenReplayGuard>();
        }

        // Fail at start-up on a missing or malformed key-encryption key, not on the first secret.
        services.AddHostedService(sp => { _ = sp.GetRequiredService<KeyRing>(); return sp.GetRequiredService<SecretsBrokerStartup>(); });
        services.AddSingleton<SecretsBrokerStartup>();
        // The job revocation list itself is registered by AddJobTokens (shared with intake and cache).
        services.AddScoped<IRevokedJobTokenAudit, RevokedExchangeAudit>();
        if (addMessaging) builder.AddEciMessaging(AddSecretsBrokerConsumers);
        services.AddProblemDetails();
        return builder;
    }

    /// <summary>The broker's consumers, on queues of its own (<c>secrets-broker-…</c>) so it gets its own copy of each event.</summary>
    public static void AddSecretsBrokerConsumers(IBusRegistrationConfigurator bus) =>
        bus.AddConsumer<RunnerFinishedConsumer>().Endpoint(e => e.Name = "secrets-broker-runner-finished");

    /// <summary>Maps the broker's APIs: exchange, job identity (OIDC discovery, JWKS, mint), admin, audit and operator secrets.</summary>
    public static IEndpointRouteBuilder MapSecretsBroker(this IEndpointRouteBuilder app)
    {
        app.MapExchangeApi();
        app.MapIdentityApi();
        app.MapAdminApi();
        app.MapAuditApi();
        app.MapOperatorSecretsApi();
        app.MapAttestationApi();
        return app;
    }
}
