using EphemeralCI.Intake.Apis;
using EphemeralCI.Intake.Auth;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.IntegrationEvents.EventHandling;
using EphemeralCI.Intake.Logs;
using EphemeralCI.Intake.Services;
using EphemeralCI.Intake.Templates;
using EphemeralCI.JobTokens;
using EphemeralCI.Messaging;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace EphemeralCI.Intake;

public static class IntakeExtensions
{
    public const string DatabaseConnectionName = "intakedb";
    public const string RedisConnectionName = "redis";

    /// <summary>Everything the Intake module needs, in one place.</summary>
    public static IHostApplicationBuilder AddIntake(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<IntakeOptions>().BindConfiguration(IntakeOptions.Section);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(sp => RunnerTemplateCatalog.FromConfiguration(builder.Configuration));

        // Postgres: jobs, timeline, logs, API keys and the outbox. Migrated before the bus starts,
        // so the hosted service is registered first (hosted services start in order).
        builder.AddNpgsqlDbContext<IntakeDbContext>(DatabaseConnectionName,
            configureDbContextOptions: o => o.UseSnakeCaseNamingConvention());
        services.AddHostedService<IntakeDatabaseInitializer>();

        // Redis only wakes live log followers; Postgres holds the data.
        builder.AddRedisClient(RedisConnectionName);

        builder.AddJobTokens();
        services.AddIntakeAuth();

        builder.AddEciMessaging(bus =>
        {
            // Queues named for this module, so another module's consumer of the same message in
            // the same broker (or process) gets its own copy instead of competing for ours.
            bus.AddConsumer<JobProvisioningConsumer>().Endpoint(e => e.Name = "intake-job-provisioning");
            bus.AddConsumer<RunnerWaitingConsumer>().Endpoint(e => e.Name = "intake-runner-waiting");
            bus.AddConsumer<RunnerStartedConsumer>().Endpoint(e => e.Name = "intake-runner-started");
            bus.AddConsumer<RunnerFinishedConsumer>().Endpoint(e => e.Name = "intake-runner-finished");
            bus.AddConsumer<RunnerDestroyedConsumer>().Endpoint(e => e.Name = "intake-runner-destroyed");
            bus.AddConsumer<RunnerProgressConsumer>().Endpoint(e => e.Name = "intake-runner-progress");
        });
        builder.AddOutboxDispatcher<IntakeDbContext>();

        services.AddScoped<JobSubmissionService>();
        services.AddScoped<JobUpdater>();
        services.AddScoped<JobLogStore>();
        services.AddScoped<JobLogFollower>();
        services.AddSingleton<JobLiveNotifier>();
        return builder;
    }

    /// <summary>The intake's HTTP API: jobs, API keys and the runner-facing endpoints.</summary>
    public static IEndpointRouteBuilder MapIntake(this IEndpointRouteBuilder app)
    {
        app.MapJobsApi();
        app.MapApiKeysApi();
        app.MapRunnerApi();
        return app;
    }
}
