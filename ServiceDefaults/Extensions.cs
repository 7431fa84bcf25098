using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// What every EphemeralCI service shares: OpenTelemetry, health endpoints, service discovery and
/// resilient HTTP clients. The usual Aspire ServiceDefaults project.
/// </summary>
public static class Extensions
{
    private const string HealthEndpointPath = "/health";
    private const string AlivenessEndpointPath = "/alive";
    private const string MetricsEndpointPath = "/metrics";

    /// <summary>Serve a Prometheus scrape endpoint at /metrics: on in the all-in-one server, opt-in on the distributed hosts.</summary>
    public const string PrometheusEnabledKey = "Telemetry:Prometheus:Enabled";

    /// <summary>Meters and activity sources of EphemeralCI's modules (EphemeralCI.Intake, .Provisioner, .SecretsBroker, .Cache, .Messaging).</summary>
    public const string EciInstruments = "EphemeralCI.*";

    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.ConfigureOpenTelemetry();
        builder.AddDefaultHealthChecks();
        builder.Services.AddServiceDiscovery();
        builder.Services.ConfigureHttpClientDefaults(http =>
        {
            http.AddStandardResilienceHandler();
            http.AddServiceDiscovery();
        });
        return builder;
    }

    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });

        var prometheus = builder.Configuration.GetValue<bool>(PrometheusEnabledKey);
        var telemetry = builder.Services.AddOpenTelemetry();
        // A host started outside Aspire (the all-in-one server, a container) has no OTEL_SERVICE_NAME:
        // name it after its application, not "unknown_service:dotnet". One that is set stays.
        if (string.IsNullOrWhiteSpace(builder.Configuration["OTEL_SERVICE_NAME"]))
        {
            telemetry.ConfigureResource(resource => resource.AddService(builder.Environment.ApplicationName));
        }
        telemetry
            .WithMetrics(metrics =>
            {
                metrics
                    .AddAspNetCoreInstrumentation()
                    .AddHttpClientInstrumentation()
                    .AddRuntimeInstrumentation()
                    .AddMeter("MassTransit", EciInstruments);
                if (prometheus) metrics.AddPrometheusExporter();
            })
            .WithTracing(tracing => tracing
                .AddSource(builder.Environment.ApplicationName, "MassTransit", EciInstruments)
                .AddAspNetCoreInstrumentation(o =>
                    // Health probes and scrapes would drown the traces.
                    o.Filter = ctx => !IsProbeOrScrape(ctx.Request.Path))
                .AddHttpClientInstrumentation());

        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            builder.Services.AddOpenTelemetry().UseOtlpExporter();
        }
        return builder;
    }

    private static bool IsProbeOrScrape(PathString path) =>
        path.StartsWithSegments(HealthEndpointPath) || path.StartsWithSegments(AlivenessEndpointPath) || path.StartsWithSegments(MetricsEndpointPath);

    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), ["live"]);
        return builder;
    }

    /// <summary>/health (ready: every check) and /alive (live: the process answers).</summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        // A probe's request span is filtered out (above), but the health checks it runs (a database query, an S3
        // call) would still make client spans — each a root trace of its own, every few seconds in the Aspire dashboard.
        app.Use(async (context, next) =>
        {
            if (!IsProbeOrScrape(context.Request.Path))
            {
                await next(context);
                return;
            }
            using var quiet = SuppressInstrumentationScope.Begin();
            // A probe that gives up (its timeout passed on a busy machine) must not turn into "database Unhealthy:
            // the operation was canceled" logged as an error: the checks run to their end (each bounded by its own
            // connection timeout) and the answer goes nowhere.
            context.RequestAborted = CancellationToken.None;
            await next(context);
        });
        app.MapHealthChecks(HealthEndpointPath);
        app.MapHealthChecks(AlivenessEndpointPath, new HealthCheckOptions { Predicate = r => r.Tags.Contains("live") });
        if (app.Configuration.GetValue<bool>(PrometheusEnabledKey)) app.MapPrometheusScrapingEndpoint(MetricsEndpointPath);
        return app;
    }
}
