using EphemeralCI.Attestations;
using EphemeralCI.Intake.Apis;
using EphemeralCI.Intake.Attestations;
using EphemeralCI.Intake.Auth;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Infrastructure.DataProtection;
using EphemeralCI.Intake.Consumers;
using EphemeralCI.Intake.Logs;
using EphemeralCI.Intake.Services;
using EphemeralCI.Intake.Terminals;
using EphemeralCI.Intake.WebUi;
using EphemeralCI.RunnerTemplates;
using EphemeralCI.JobTokens;
using EphemeralCI.Messaging;
using EphemeralCI.Persistence;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace EphemeralCI.Intake;

public static class IntakeExtensions
{
    public const string DatabaseConnectionName = "intakedb";
    public const string RedisConnectionName = "redis";
    /// <summary>The queue of the provisioners' warm pool reports: periodic background, so a report begins no trace.</summary>
    public const string WarmPoolReportEndpoint = "intake-warm-pool-report";

    /// <summary>Everything the Intake module needs, in one place.</summary>
    /// <param name="addMessaging">False when the host registers the bus itself (the all-in-one server,
    /// one MassTransit for every module); it must then call <see cref="AddIntakeConsumers"/>.</param>
    public static IHostApplicationBuilder AddIntake(this IHostApplicationBuilder builder, bool addMessaging = true)
    {
        var services = builder.Services;
        services.AddOptions<IntakeOptions>().BindConfiguration(IntakeOptions.Section);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(sp => RunnerTemplateCatalog.FromConfiguration(builder.Configuration));

        // Postgres (SQLite in the embedded server): jobs, timeline, logs, API keys and the outbox.
        // Migrated before the bus starts, so the hosted service is registered first (hosted services
        // start in order).
        builder.AddModuleDbContext<IntakeDbContext>(DatabaseConnectionName, o => o.UseSnakeCaseNamingConvention());
        services.AddHostedService<IntakeDatabaseInitializer>();
        services.AddHostedService<JobRedrive>();

        // Redis only wakes live log followers (the database holds the data); without a Redis
        // connection string (the embedded server) the wake-ups stay in this process.
        if (string.IsNullOrWhiteSpace(builder.Configuration.GetConnectionString(RedisConnectionName)))
        {
            services.AddSingleton<IJobLiveNotifier, InProcessJobLiveNotifier>();
            services.AddSingleton<ITerminalBus, InProcessTerminalBus>();
        }
        else
        {
            builder.AddRedisClient(RedisConnectionName);
            services.AddSingleton<IJobLiveNotifier, RedisJobLiveNotifier>();
            // An interactive session's two WebSockets may be on different replicas: the terminal's bytes cross by pub/sub.
            services.AddSingleton<ITerminalBus, RedisTerminalBus>();
        }

        builder.AddJobTokens();
        services.AddIntakeAuth();
        // One encrypted key ring in the intake database for every replica (Infrastructure/DataProtection).
        services.AddIntakeDataProtection();
        // The web UI's session cookie and antiforgery (docs: README "Web UI").
        services.AddWebUiAuth();

        if (addMessaging) builder.AddEciMessaging(AddIntakeConsumers);
        builder.AddOutboxDispatcher<IntakeDbContext>();

        services.AddScoped<JobSubmissionService>();
        services.AddSingleton<JobSpecSeal>();
        services.AddScoped<JobUpdater>();
        // The provisioners' warm pools, reported on the bus, for the Runners page.
        services.AddScoped<WarmPoolReports>();
        services.AddUntracedReceiveEndpoint(WarmPoolReportEndpoint);
        services.AddSingleton<AgentKeys>();
        services.AddScoped<JobLogStore>();
        services.AddScoped<JobLogFollower>();
        services.AddScoped<SessionCommandFollower>();

        // Each finished job's signed attestation (docs/attestation.md): signed by the secrets broker, in
        // process when the host composes it (the all-in-one server registered its signer first), else over HTTP.
        services.AddOptions<AttestationOptions>().BindConfiguration(AttestationOptions.Section);
        services.AddSingleton<AttestationSignal>();
        services.AddScoped<JobAttestor>();
        services.AddScoped<CacheUseSource>();
        services.AddHttpClient(CacheUseSource.HttpClientName);
        services.AddOptions<WebUiAdminOptions>().BindConfiguration(WebUiAdminOptions.Section);
        services.AddHttpClient(WebUiAdminOptions.HttpClientName);
        if (!services.Any(d => d.ServiceType == typeof(IAttestationSigner)))
        {
            services.AddHttpClient<IAttestationSigner, HttpAttestationSigner>(HttpAttestationSigner.HttpClientName);
        }
        services.AddHostedService<AttestationSweep>();
        // The web UI's "verified" mark: the envelope checked against the broker's keys, as job tokens are.
        services.AddSingleton<AttestationCheck>();
        return builder;
    }

    /// <summary>
    /// The intake's consumers, on queues named for this module, so another module's consumer of the
    /// same message in the same broker (or process) gets its own copy instead of competing for ours.
    /// </summary>
    public static void AddIntakeConsumers(IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<JobProvisioningConsumer>().Endpoint(e => e.Name = "intake-job-provisioning");
        bus.AddConsumer<RunnerWaitingConsumer>().Endpoint(e => e.Name = "intake-runner-waiting");
        bus.AddConsumer<RunnerStartedConsumer>().Endpoint(e => e.Name = "intake-runner-started");
        bus.AddConsumer<RunnerFinishedConsumer>().Endpoint(e => e.Name = "intake-runner-finished");
        bus.AddConsumer<RunnerDestroyedConsumer>().Endpoint(e => e.Name = "intake-runner-destroyed");
        bus.AddConsumer<RunnerProgressConsumer>().Endpoint(e => e.Name = "intake-runner-progress");
        bus.AddConsumer<WarmPoolReportConsumer>().Endpoint(e => e.Name = WarmPoolReportEndpoint);
    }

    /// <summary>The OpenAPI document a host serves (<c>MapOpenApi</c>), with the bearer scheme the API takes.</summary>
    public static IServiceCollection AddIntakeOpenApi(this IServiceCollection services) =>
        services.AddOpenApi(o => o
            .AddDocumentTransformer<BearerSecuritySchemeTransformer>()
            .AddOperationTransformer<BearerSecuritySchemeTransformer>());

    /// <summary>The intake's HTTP API (jobs, API keys, the runner-facing endpoints) and the web UI under /.</summary>
    public static IEndpointRouteBuilder MapIntake(this IEndpointRouteBuilder app)
    {
        app.MapJobsApi();
        app.MapSessionsApi();
        app.MapApiKeysApi();
        app.MapRunnerApi();
        app.MapWebUi();
        return app;
    }
}
