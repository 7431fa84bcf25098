using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;

namespace EphemeralCI.AppHost;

/// <summary>The backing services every EphemeralCI service references, whichever mode made them.</summary>
public sealed record EphemeralCIInfrastructure(
    IResourceBuilder<IResourceWithConnectionString> IntakeDb,
    IResourceBuilder<IResourceWithConnectionString> ProvisionerDb,
    IResourceBuilder<IResourceWithConnectionString> SecretsDb,
    IResourceBuilder<IResourceWithConnectionString> CacheDb,
    IResourceBuilder<IResourceWithConnectionString> Redis,
    IResourceBuilder<IResourceWithConnectionString> RabbitMq,
    IResourceBuilder<IResourceWithConnectionString>? ExternalMinio,
    IResourceBuilder<ContainerResource>? MinioContainer,
    IResourceBuilder<ParameterResource>? MinioUser,
    IResourceBuilder<ParameterResource>? MinioPassword,
    /// <summary>The GitHub Actions adapter's database; only when the adapter is configured (<c>GitHubActions:AppId</c>).</summary>
    IResourceBuilder<IResourceWithConnectionString>? GitHubActionsDb = null);

public static class InfrastructureExtensions
{
    public const string ModeSetting = "Infrastructure:Mode";

    /// <summary>
    /// Connection names, one database per service. In external mode each must be configured as
    /// ConnectionStrings:&lt;name&gt; (for example the output of eng/services.sh).
    /// </summary>
    public static readonly string[] ExternalConnectionNames =
        ["intakedb", "provisionerdb", "secretsdb", "cachedb", "redis", "rabbitmq", "minio"];

    /// <summary>
    /// <c>Infrastructure:Mode</c> = <c>Containers</c> (default: Postgres, Redis, RabbitMQ and MinIO
    /// containers for a laptop with Docker or Podman) or <c>External</c> (existing services given
    /// as connection strings, for machines without a container runtime and for our tests).
    /// </summary>
    public static EphemeralCIInfrastructure AddEphemeralCIInfrastructure(this IDistributedApplicationBuilder builder)
    {
        var mode = builder.Configuration[ModeSetting] ?? "Containers";
        return mode.ToLowerInvariant() switch
        {
            "containers" => AddContainers(builder),
            "external" => AddExternal(builder),
            _ => throw new InvalidOperationException(
                $"Setting '{ModeSetting}' is '{mode}': use 'Containers' (default) or 'External'."),
        };
    }

    private static EphemeralCIInfrastructure AddContainers(IDistributedApplicationBuilder builder)
    {
        var postgres = builder.AddPostgres("postgres").WithDataVolume().WithLifetime(ContainerLifetime.Persistent);
        var redis = builder.AddRedis("redis");
        var rabbitMq = builder.AddRabbitMQ("rabbitmq").WithManagementPlugin();

        var minioUser = builder.AddParameter("minio-user", "ephemeralci");
        var minioPassword = builder.AddParameter("minio-password",
            new GenerateParameterDefault { MinLength = 24, Special = false }, secret: true, persist: true);
        var minio = builder.AddContainer("minio", "minio/minio", "RELEASE.2025-09-07T16-13-09Z")
            .WithArgs("server", "/data", "--console-address", ":9001")
            .WithEnvironment("MINIO_ROOT_USER", minioUser)
            .WithEnvironment("MINIO_ROOT_PASSWORD", minioPassword)
            .WithHttpEndpoint(targetPort: 9000, name: "api")
            .WithHttpEndpoint(targetPort: 9001, name: "console")
            .WithHttpHealthCheck("/minio/health/live", endpointName: "api")
            .WithVolume("ephemeralci-minio-data", "/data");

        return new EphemeralCIInfrastructure(
            postgres.AddDatabase("intakedb"),
            postgres.AddDatabase("provisionerdb"),
            postgres.AddDatabase("secretsdb"),
            postgres.AddDatabase("cachedb"),
            redis,
            rabbitMq,
            ExternalMinio: null,
            minio,
            minioUser,
            minioPassword,
            GitHubActionsExtensions.IsConfigured(builder.Configuration) ? postgres.AddDatabase(GitHubActionsExtensions.DatabaseName) : null);
    }

    private static EphemeralCIInfrastructure AddExternal(IDistributedApplicationBuilder builder)
    {
        // Aspire would otherwise wait forever on a connection string that is not there. Publishing
        // (azd) needs none: each becomes a secret parameter the deployment tool asks for.
        var missing = builder.ExecutionContext.IsPublishMode ? [] : ExternalConnectionNames
            .Concat(GitHubActionsExtensions.IsConfigured(builder.Configuration) ? [GitHubActionsExtensions.DatabaseName] : [])
            .Where(name => string.IsNullOrWhiteSpace(builder.Configuration.GetConnectionString(name)))
            .Select(name => $"ConnectionStrings:{name}")
            .ToList();
        if (missing.Count > 0)
        {
            throw new InvalidOperationException(
                $"{ModeSetting}=External needs these settings, which are missing: {string.Join(", ", missing)}. " +
                "Start local services with `eval \"$(eng/services.sh start)\"` and pass them, e.g. ConnectionStrings__intakedb=...");
        }

        string? Given(string name) => builder.Configuration.GetConnectionString(name);
        return new EphemeralCIInfrastructure(
            builder.AddConnectionString("intakedb").WithPostgresHealth(Given("intakedb")),
            builder.AddConnectionString("provisionerdb").WithPostgresHealth(Given("provisionerdb")),
            builder.AddConnectionString("secretsdb").WithPostgresHealth(Given("secretsdb")),
            builder.AddConnectionString("cachedb").WithPostgresHealth(Given("cachedb")),
            builder.AddConnectionString("redis").WithRedisHealth(Given("redis")),
            builder.AddConnectionString("rabbitmq").WithRabbitMqHealth(Given("rabbitmq")),
            builder.AddConnectionString("minio").WithS3Health(Given("minio")),
            MinioContainer: null,
            MinioUser: null,
            MinioPassword: null,
            GitHubActionsExtensions.IsConfigured(builder.Configuration)
                ? builder.AddConnectionString(GitHubActionsExtensions.DatabaseName).WithPostgresHealth(Given(GitHubActionsExtensions.DatabaseName))
                : null);
    }

    /// <summary>Gives the cache its object store as ConnectionStrings:minio, in either mode.</summary>
    public static IResourceBuilder<ProjectResource> WithMinio(
        this IResourceBuilder<ProjectResource> project, EphemeralCIInfrastructure infra)
    {
        if (infra.ExternalMinio is { } external)
        {
            return project.WithReference(external).WaitFor(external);
        }
        var api = infra.MinioContainer!.GetEndpoint("api");
        return project
            .WithEnvironment("ConnectionStrings__minio", ReferenceExpression.Create(
                $"Endpoint={api};AccessKey={infra.MinioUser!};SecretKey={infra.MinioPassword!}"))
            .WaitFor(infra.MinioContainer!);
    }

    /// <summary>
    /// The intake's first admin API key: from EphemeralCI:BootstrapAdminKey when given (tests,
    /// automation), otherwise the intake generates one and prints it once in its console log.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithBootstrapAdminKey(
        this IResourceBuilder<ProjectResource> intake, IConfiguration configuration)
    {
        var key = configuration["EphemeralCI:BootstrapAdminKey"];
        return string.IsNullOrWhiteSpace(key) ? intake : intake.WithEnvironment("Intake__BootstrapAdminKey", key);
    }
}
