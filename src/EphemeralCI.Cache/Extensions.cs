using EphemeralCI.Cache.Apis;
using EphemeralCI.Cache.Storage;
using EphemeralCI.JobTokens;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace EphemeralCI.Cache;

public static class CacheExtensions
{
    /// <summary>Name of the S3 connection string (<c>ConnectionStrings:minio</c>).</summary>
    public const string S3ConnectionName = "minio";

    /// <summary>
    /// Everything the cache module needs, in one place: job token validation, options from the
    /// <c>Cache</c> section, and the object store. Registrations are additive so one process can
    /// compose this module with the others; a host (the embedded all-in-one server) that already
    /// registered an <see cref="IBlobStore"/> keeps it, and then no S3 settings are needed.
    /// </summary>
    public static IHostApplicationBuilder AddCache(this IHostApplicationBuilder builder)
    {
        if (!builder.Services.Any(d => d.ServiceType == typeof(JobTokenService)))
        {
            builder.AddJobTokens();
        }
        builder.Services.AddOptions<JobTokenOptions>()
            .Validate(o => !string.IsNullOrWhiteSpace(o.SigningKey),
                $"Configuration setting '{JobTokenOptions.Section}:SigningKey' is missing: set it to base64 of 32 random bytes.")
            .ValidateOnStart();
        builder.Services.TryAddSingleton(TimeProvider.System);

        builder.Services.AddOptions<CacheOptions>()
            .BindConfiguration(CacheOptions.Section)
            .Validate(o => o.MaxObjectBytes > 0, $"Configuration setting '{CacheOptions.Section}:MaxObjectBytes' must be positive.")
            .Validate(o => !string.IsNullOrWhiteSpace(o.SpoolDirectory), $"Configuration setting '{CacheOptions.Section}:SpoolDirectory' must not be empty.")
            .ValidateOnStart();

        if (!builder.Services.Any(d => d.ServiceType == typeof(IBlobStore)))
        {
            // Parsed now so a missing or malformed setting stops start-up with its name.
            var s3 = S3Settings.Parse(builder.Configuration.GetConnectionString(S3ConnectionName), $"ConnectionStrings:{S3ConnectionName}");
            builder.Services.AddSingleton(new S3BlobStore(s3));
            builder.Services.AddSingleton<IBlobStore>(sp => sp.GetRequiredService<S3BlobStore>());
            builder.Services.AddHostedService<S3BucketInitializer>();
            builder.Services.AddHealthChecks().AddCheck<S3BucketHealthCheck>("cache-s3-bucket", tags: ["ready"]);
        }

        builder.Services.AddProblemDetails();
        return builder;
    }

    /// <summary>Maps the cache's API: the HTTP build cache under <c>/cache/{ac|cas}/{sha256}</c>.</summary>
    public static IEndpointRouteBuilder MapCache(this IEndpointRouteBuilder app)
    {
        app.MapBuildCacheApi();
        return app;
    }
}
