using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using RabbitMQ.Client;

namespace EphemeralCI.AppHost;

/// <summary>
/// External mode: each backing service given as a connection string is a dashboard resource with a real health check
/// (a Postgres query, a Redis PING, an AMQP connection, an HTTP answer from the S3 endpoint), so an operator sees what
/// the services depend on and whether it is up — and the services wait for it (<c>WaitFor</c>) instead of crash-looping.
/// </summary>
internal static class InfrastructureHealth
{
    public static IResourceBuilder<IResourceWithConnectionString> WithPostgresHealth(this IResourceBuilder<IResourceWithConnectionString> resource, string? connectionString) =>
        resource.WithCheck(connectionString, (checks, name, cs) => checks.AddNpgSql(cs, name: name, timeout: TimeSpan.FromSeconds(5)));

    public static IResourceBuilder<IResourceWithConnectionString> WithRedisHealth(this IResourceBuilder<IResourceWithConnectionString> resource, string? connectionString) =>
        resource.WithCheck(connectionString, (checks, name, cs) => checks.AddRedis(cs, name: name, timeout: TimeSpan.FromSeconds(5)));

    public static IResourceBuilder<IResourceWithConnectionString> WithRabbitMqHealth(this IResourceBuilder<IResourceWithConnectionString> resource, string? connectionString) =>
        resource.WithCheck(connectionString, (checks, name, cs) => checks.Add(new HealthCheckRegistration(name, _ => new AmqpCheck(cs), null, null, TimeSpan.FromSeconds(5))));

    public static IResourceBuilder<IResourceWithConnectionString> WithS3Health(this IResourceBuilder<IResourceWithConnectionString> resource, string? connectionString) =>
        resource.WithCheck(connectionString, (checks, name, cs) => checks.Add(new HealthCheckRegistration(name, _ => new S3EndpointCheck(cs), null, null, TimeSpan.FromSeconds(5))));

    private static IResourceBuilder<IResourceWithConnectionString> WithCheck(this IResourceBuilder<IResourceWithConnectionString> resource, string? connectionString,
        Action<IHealthChecksBuilder, string, string> add)
    {
        // Publishing has no connection string (the deployment asks for it); nothing to check here then.
        if (string.IsNullOrWhiteSpace(connectionString)) return resource;
        var name = $"{resource.Resource.Name}-reachable";
        add(resource.ApplicationBuilder.Services.AddHealthChecks(), name, connectionString);
        return resource.WithHealthCheck(name);
    }

    /// <summary>Opens (and closes) an AMQP connection: credentials and virtual host included, not only the port.</summary>
    private sealed class AmqpCheck(string connectionString) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                var factory = new ConnectionFactory { Uri = new Uri(connectionString), RequestedConnectionTimeout = TimeSpan.FromSeconds(5) };
                await using var connection = await factory.CreateConnectionAsync("ephemeralci-apphost-health", cancellationToken);
                return HealthCheckResult.Healthy();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return HealthCheckResult.Unhealthy(e.Message);
            }
        }
    }

    /// <summary>The S3 endpoint answers HTTP (any status: an unauthenticated request is refused by a healthy S3).</summary>
    private sealed class S3EndpointCheck(string connectionString) : IHealthCheck
    {
        private static readonly HttpClient Http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };

        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            var endpoint = connectionString.Split(';').Select(p => p.Split('=', 2)).FirstOrDefault(p => p.Length == 2 && p[0].Trim().Equals("Endpoint", StringComparison.OrdinalIgnoreCase))?[1].Trim();
            if (endpoint is null || !Uri.TryCreate(endpoint, UriKind.Absolute, out var uri)) return HealthCheckResult.Unhealthy("ConnectionStrings:minio has no Endpoint=…");
            try
            {
                using var response = await Http.GetAsync(uri, cancellationToken);
                return HealthCheckResult.Healthy($"HTTP {(int)response.StatusCode}");
            }
            catch (HttpRequestException e)
            {
                return HealthCheckResult.Unhealthy(e.Message);
            }
        }
    }
}
