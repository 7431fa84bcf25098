using EphemeralCI.Cache.Apis;
using EphemeralCI.Cache.BuildCache;
using EphemeralCI.Cache.Entries;
using EphemeralCI.Cache.Git;
using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.Cache.Storage;
using EphemeralCI.JobTokens;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using EphemeralCI.Persistence;
using StackExchange.Redis;

namespace EphemeralCI.Cache;

/*
 * The dependency cache: keyed entries scoped to repository + ref, and a content-addressed build cache.
 *
 *   runner / @actions/cache ──Twirp v2 or REST v1 (job token)──> CacheEntryService ── reserve ──> ICacheReservations (Redis | in-process)
 *        │                                                          │  lookup: own ref, then default branch        └─> cachedb (CacheDbContext)
 *        │                                                          │  (answers cached per repository generation: ICacheLookups, Redis | in-process)
 *        └──signed URL (HMAC)──> BlobTransferApi ── Azure Put Blob/Block/BlockList ──> UploadStaging ── commit: size + SHA-256 ──> IBlobStore
 *                                                │     (each block or v1 chunk once: spool + in-order SHA-256 + S3 multipart part; commit completes it)  (S3 | folder)
 *                                                └── GET whole: hash-checked while streaming, corrupt → quarantined; Range: 206 + Repr-Digest
 *   lookup (Cache:DirectDownloads) ── presigned S3 GET for clients that verify the SHA-256 themselves (the agent)
 *   Bazel / ccache / Gradle ──/cache/{ac|cas}/{sha256} (job token)──> BuildCacheStore ── entries (own ref + default branch; immutable;
 *                                                                      /ac writes only from Cache:BuildCache:TrustedRefs) ──> IBlobStore
 *   admin ──/cache/admin (Cache:AdminToken)──> usage, entries, delete
 *   provisioner ──POST /git/verify (job token)──> GitMirrors ── one shared `git fetch` per repository ──> forge (Checkout:UrlTemplate,
 *                                                   (commit exists, on the claimed ref's tip)             credentials: an ECI_* secret from the broker)
 *   runner agent ──/git/{owner}/{name}.git (job token: its repository only)──> `git http-backend` upload-pack over the bare mirror
 *   MirrorMaintenance (every Checkout:MaintenanceInterval): git gc, Checkout:MirrorBudgetBytes (least recently fetched go)
 *   CacheJanitor (every Cache:JanitorInterval): expiry, abandoned uploads, orphaned staging, quotas (LRU; per ref, then per repository)
 */
public static class CacheExtensions
{
    /// <summary>Name of the S3 connection string (<c>ConnectionStrings:minio</c>).</summary>
    public const string S3ConnectionName = "minio";

    /// <summary>Name of the metadata database connection string (<c>ConnectionStrings:cachedb</c>).</summary>
    public const string DatabaseName = "cachedb";

    /// <summary>Name of the Redis connection string (<c>ConnectionStrings:redis</c>); without it reservations stay in process.</summary>
    public const string RedisConnectionName = "redis";

    /// <summary>
    /// Everything the cache module needs, in one place: job token validation, options from the
    /// <c>Cache</c> section, the metadata database, reservations, the object store, and the janitor.
    /// Registrations are additive so one process can compose this module with the others: a host (the
    /// embedded all-in-one server) that already registered an <see cref="IBlobStore"/>, a
    /// <c>DbContextOptions&lt;CacheDbContext&gt;</c> (SQLite), an <see cref="ICacheReservations"/> or a Redis
    /// connection keeps its own.
    /// </summary>
    public static IHostApplicationBuilder AddCache(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        if (!services.Any(d => d.ServiceType == typeof(JobTokenService)))
        {
            builder.AddJobTokens();
        }
        // The shared HS256 key is needed only when tokens are not checked against the broker's keys.
        services.AddOptions<JobTokenOptions>()
            .Validate<IServiceProvider>((o, sp) => !string.IsNullOrWhiteSpace(o.SigningKey) || sp.GetRequiredService<JobTokenService>().UsesBrokerKeys,
                $"Configuration setting '{JobTokenOptions.Section}:SigningKey' is missing: set it to base64 of 32 random bytes, or set '{JobTokenOptions.Section}:Authority'.")
            .ValidateOnStart();
        services.TryAddSingleton(TimeProvider.System);

        services.AddOptions<CacheOptions>()
            .BindConfiguration(CacheOptions.Section)
            .Validate(o => o.MaxObjectBytes > 0, $"Configuration setting '{CacheOptions.Section}:MaxObjectBytes' must be positive.")
            .Validate(o => o.RepositoryQuotaBytes > 0, $"Configuration setting '{CacheOptions.Section}:RepositoryQuotaBytes' must be positive.")
            .Validate(o => o.ScopeQuotaBytes > 0, $"Configuration setting '{CacheOptions.Section}:ScopeQuotaBytes' must be positive.")
            .Validate(o => !string.IsNullOrWhiteSpace(o.SpoolDirectory), $"Configuration setting '{CacheOptions.Section}:SpoolDirectory' must not be empty.")
            .Validate(o => o.JanitorInterval > TimeSpan.Zero && o.UploadTimeout > TimeSpan.Zero && o.ExpireAfterUnused > TimeSpan.Zero && o.SignedUrlLifetime > TimeSpan.Zero,
                $"Configuration settings '{CacheOptions.Section}:JanitorInterval', 'UploadTimeout', 'ExpireAfterUnused' and 'SignedUrlLifetime' must be positive.")
            .Validate(o => o.AccessTouchInterval >= TimeSpan.Zero && o.AccessTouchInterval < o.ExpireAfterUnused,
                $"Configuration setting '{CacheOptions.Section}:AccessTouchInterval' must be zero or positive and shorter than 'ExpireAfterUnused'.")
            .Validate(o => o.UseRecordRetention > TimeSpan.Zero, $"Configuration setting '{CacheOptions.Section}:UseRecordRetention' must be positive.")
            .Validate(o => o.LookupCacheLifetime >= TimeSpan.Zero, $"Configuration setting '{CacheOptions.Section}:LookupCacheLifetime' must not be negative.")
            .Validate(o => o.DefaultBranch.StartsWith("refs/", StringComparison.Ordinal), $"Configuration setting '{CacheOptions.Section}:DefaultBranch' must be a full ref such as 'refs/heads/main'.")
            .ValidateOnStart();

        var database = builder.Configuration.GetConnectionString(DatabaseName);
        services.PostConfigure<CacheOptions>(o => o.RedisNamespace ??= CacheLookupNames.Namespace(database));

        AddBlobStore(builder);

        if (!services.Any(d => d.ServiceType == typeof(DbContextOptions<CacheDbContext>)))
        {
            // Postgres, or SQLite in the embedded server (Aspire names a missing connection string).
            builder.AddModuleDbContext<CacheDbContext>(DatabaseName, o => o.UseSnakeCaseNamingConvention());
        }

        var hasRedis = services.Any(d => d.ServiceType == typeof(IConnectionMultiplexer))
            || !string.IsNullOrWhiteSpace(builder.Configuration.GetConnectionString(RedisConnectionName));
        if (hasRedis && !services.Any(d => d.ServiceType == typeof(IConnectionMultiplexer))) builder.AddRedisClient(RedisConnectionName);
        if (hasRedis)
        {
            services.TryAddSingleton<ICacheReservations, RedisCacheReservations>();
            services.TryAddSingleton<ICacheLookups, RedisCacheLookups>();
        }
        else
        {
            services.TryAddSingleton<ICacheReservations, InProcessCacheReservations>();
            services.TryAddSingleton<ICacheLookups, InProcessCacheLookups>();
        }

        services.AddSingleton<SignedUrls>();
        services.AddSingleton<CacheUrls>();
        services.AddSingleton<UploadStaging>();
        services.AddScoped<CacheEntryService>();
        // Usage, entries and deletion for the all-in-one server's web UI (admin keys only).
        services.AddScoped<EphemeralCI.Contracts.Admin.ICacheAdminView, CacheAdminView>();
        services.AddScoped<CacheUseLog>();
        services.AddScoped<EphemeralCI.Contracts.Jobs.ICacheUseLog>(sp => sp.GetRequiredService<CacheUseLog>());
        services.AddSingleton<CacheAttestationTokenGate>();
        services.AddScoped<BuildCacheStore>();
        services.AddSingleton<CacheAdminTokenGate>();
        // Migrations first: hosted services start in order, and the janitor's first pass needs the tables.
        services.AddHostedService<ModuleDatabaseMigrator<CacheDbContext>>();
        services.AddSingleton<CacheJanitor>();
        services.AddHostedService(sp => sp.GetRequiredService<CacheJanitor>());

        AddGitMirrors(services);

        services.AddProblemDetails();
        return builder;
    }

    private static void AddGitMirrors(IServiceCollection services)
    {
        services.AddOptions<CheckoutOptions>()
            .BindConfiguration(CheckoutOptions.Section)
            .Validate(o => o.UrlTemplate.Contains("{repository}", StringComparison.Ordinal), $"Configuration setting '{CheckoutOptions.Section}:UrlTemplate' must contain '{{repository}}'.")
            .Validate(o => o.Repositories.All(r => !string.IsNullOrWhiteSpace(r.Match) && (string.IsNullOrWhiteSpace(r.Url) || r.Url.Contains("{repository}", StringComparison.Ordinal) || !r.Match.Contains('*'))),
                $"Configuration settings '{CheckoutOptions.Section}:Repositories:{{n}}' need a Match, and a Url for a glob Match must contain '{{repository}}'.")
            .Validate(o => o.FetchTimeout > TimeSpan.Zero && o.MaintenanceInterval > TimeSpan.Zero && o.MirrorBudgetBytes > 0 && o.PackCacheBytes >= 0,
                $"Configuration settings '{CheckoutOptions.Section}:FetchTimeout', 'MaintenanceInterval' and 'MirrorBudgetBytes' must be positive.")
            .Validate(o => new[] { o.TokenSecret }.Concat(o.Repositories.Select(r => r.TokenSecret)).All(n => string.IsNullOrEmpty(n) || n.StartsWith("ECI_", StringComparison.OrdinalIgnoreCase)),
                $"Configuration settings '{CheckoutOptions.Section}:TokenSecret' (and per repository) must name an operator-only secret, starting with 'ECI_'.")
            .ValidateOnStart();
        // The all-in-one server registers its in-process broker first; a service reads the broker over HTTP.
        services.AddHttpClient<BrokerOperatorSecrets>();
        services.TryAddSingleton<IOperatorSecrets>(sp => sp.GetRequiredService<BrokerOperatorSecrets>());
        services.TryAddSingleton<IForgeCredentials, ForgeCredentials>();
        services.AddSingleton<GitMirrors>();
        services.AddSingleton<PackCache>();
        services.AddSingleton<LfsObjects>();
        // Large objects stream for minutes: not the 30-second budget of the default resilience handler (a failed
        // download fails that runner's pull; the next one asks again).
#pragma warning disable EXTEXP0001 // RemoveAllResilienceHandlers is marked experimental; it is the documented way to opt one client out.
        services.AddHttpClient(LfsObjects.HttpClientName, c => c.Timeout = TimeSpan.FromMinutes(30)).RemoveAllResilienceHandlers();
#pragma warning restore EXTEXP0001
        services.AddHostedService<MirrorMaintenance>();
    }

    /// <summary>
    /// The host's own store if it registered one; a local folder when <c>Cache:FileSystemRoot</c> is set or no
    /// <c>ConnectionStrings:minio</c> is (the embedded default); S3 otherwise.
    /// </summary>
    private static void AddBlobStore(IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        if (services.Any(d => d.ServiceType == typeof(IBlobStore))) return;
        var root = builder.Configuration[$"{CacheOptions.Section}:{nameof(CacheOptions.FileSystemRoot)}"];
        var s3 = builder.Configuration.GetConnectionString(S3ConnectionName);
        if (!string.IsNullOrWhiteSpace(root) || string.IsNullOrWhiteSpace(s3))
        {
            root = string.IsNullOrWhiteSpace(root) ? DefaultFileSystemRoot() : root;
            services.AddSingleton<IBlobStore>(new FileSystemBlobStore(root));
            return;
        }
        // Parsed now so a malformed setting stops start-up with its name.
        var settings = S3Settings.Parse(s3, $"ConnectionStrings:{S3ConnectionName}");
        services.AddSingleton(new S3BlobStore(settings));
        services.AddSingleton<IBlobStore>(sp => sp.GetRequiredService<S3BlobStore>());
        services.AddHostedService<S3BucketInitializer>();
        services.AddHealthChecks().AddCheck<S3BucketHealthCheck>("cache-s3-bucket", tags: ["ready"]);
    }

    private static string DefaultFileSystemRoot()
    {
        var data = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData);
        return Path.Combine(string.IsNullOrEmpty(data) ? Path.GetTempPath() : data, "ephemeralci", "cache-objects");
    }

    /// <summary>
    /// Maps the cache's APIs: the Bazel HTTP build cache (<c>/cache/{ac|cas}/{sha256}</c>), the Actions cache
    /// protocols (<c>/twirp/github.actions.results.api.v1.CacheService/*</c>, <c>/_apis/artifactcache/*</c>), the
    /// signed blob URLs (<c>/cache/blobs/{id}</c>), the admin API (<c>/cache/admin/*</c>) and the record of what jobs were
    /// served (<c>/internal/v1/cache-uses</c>).
    /// </summary>
    public static IEndpointRouteBuilder MapCache(this IEndpointRouteBuilder app)
    {
        app.MapBuildCacheApi();
        app.MapActionsCacheV2Api();
        app.MapActionsCacheV1Api();
        app.MapBlobTransferApi();
        app.MapCacheAdminApi();
        app.MapCacheUsesApi();
        app.MapGitMirrorApi();
        return app;
    }
}
