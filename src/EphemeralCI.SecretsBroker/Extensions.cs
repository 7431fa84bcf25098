using EphemeralCI.JobTokens;
using EphemeralCI.SecretsBroker.Apis;
using EphemeralCI.SecretsBroker.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace EphemeralCI.SecretsBroker;

public static class SecretsBrokerExtensions
{
    /// <summary>Name of the Redis connection string (<c>ConnectionStrings:redis</c>).</summary>
    public const string RedisConnectionName = "redis";

    /// <summary>
    /// Everything the secrets broker needs, in one place: job token validation and the single-use
    /// store. Registrations are additive so one process can compose this module with the others:
    /// a host (the embedded all-in-one server) that already registered an <see cref="ITokenReplayGuard"/>
    /// or a Redis connection keeps its own.
    /// </summary>
    public static IHostApplicationBuilder AddSecretsBroker(this IHostApplicationBuilder builder)
    {
        if (!builder.Services.Any(d => d.ServiceType == typeof(JobTokenService)))
        {
            builder.AddJobTokens();
        }
        // Fail at start-up, not on the first exchange, when the signing key is not configured.
        builder.Services.AddOptions<JobTokenOptions>()
            .Validate(o => !string.IsNullOrWhiteSpace(o.SigningKey),
                $"Configuration setting '{JobTokenOptions.Section}:SigningKey' is missing: set it to base64 of 32 random bytes.")
            .ValidateOnStart();
        builder.Services.TryAddSingleton(TimeProvider.System);

        if (!builder.Services.Any(d => d.ServiceType == typeof(ITokenReplayGuard)))
        {
            if (!builder.Services.Any(d => d.ServiceType == typeof(IConnectionMultiplexer)))
            {
                // The Aspire client would only complain on first use; say which setting is missing now.
                if (string.IsNullOrWhiteSpace(builder.Configuration.GetConnectionString(RedisConnectionName))
                    && string.IsNullOrWhiteSpace(builder.Configuration["Aspire:StackExchange:Redis:ConnectionString"]))
                {
                    throw new InvalidOperationException(
                        $"Configuration setting 'ConnectionStrings:{RedisConnectionName}' is missing: the secrets broker keeps single-use token marks in Redis.");
                }
                builder.AddRedisClient(RedisConnectionName);
            }
            builder.Services.AddSingleton<ITokenReplayGuard, RedisTokenReplayGuard>();
        }

        builder.Services.AddProblemDetails();
        return builder;
    }

    /// <summary>Maps the broker's API: <c>POST /api/v1/secrets/exchange</c>.</summary>
    public static IEndpointRouteBuilder MapSecretsBroker(this IEndpointRouteBuilder app)
    {
        app.MapExchangeApi();
        return app;
    }
}
