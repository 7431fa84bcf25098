using EphemeralCI.Contracts.Messages;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.RunnerTemplates;
using System.Runtime.Versioning;
using EphemeralCI.JobTokens;
using EphemeralCI.Messaging;
using EphemeralCI.Persistence;
using EphemeralCI.Provisioner.Apis;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Backends.Kubernetes;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using EphemeralCI.Provisioner.Checkout;
using EphemeralCI.Provisioner.Consumers;
using EphemeralCI.Provisioner.Infrastructure;
using EphemeralCI.Provisioner.Ownership;
using EphemeralCI.Provisioner.Reaper;
using EphemeralCI.Provisioner.Reconciliation;
using EphemeralCI.Provisioner.Scheduling;
using EphemeralCI.Provisioner.Teardown;
using EphemeralCI.Provisioner.Watchers;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace EphemeralCI.Provisioner;

/*
 * The provisioner: one brand-new runner per job, always torn down.
 *
 *   RabbitMQ ──RunJob──> RunJobConsumer ──> RunnerDeduplicator ──> RunnerLimiter ──> RunnerScheduler ──> IRunnerBackend.StartAsync
 *                                          (one runner per job ever:  (per backend/repo:  (template, deadline,  (LocalSandbox: a warm sandbox
 *                                           a claim, or nothing)       one insert, PK job  job token)          of the template when WarmPool
 *                                                                      id; full → Waiting                      has one ready, else cold: cgroup +
 *                                                                      + RunnerWaiting;                        bwrap + relay [+ egress netns])
 *                                                                      WaitingRunnerPump starts waiting jobs in order
 *                                                                      when a save frees a slot: RunnerSlotsInterceptor)
 *                                          (stages meet at IRunnerAdmission, IRunnerStarter, IRunnerBackend: Scheduling/RunnerPipeline.cs)
 *                                                                          │
 *                                                                          v
 *                                                                    RunnerSupervisor ── agent exits ──┐
 *                                                                    (deadline → kill, TimedOut)       │
 *   RabbitMQ ──CancelJob──> CancelJobConsumer ── kill, Cancelled ─────────────────────────────────────>├──> RunnerReaper
 *                           (no runner yet → tombstone)                                                │    (kill tree, delete
 *   start-up ──> StartupReconciler ── running → Lost ────────────────────────────────────────────────>┘     workspace, cgroup,
 *                 (provisioning: never started → back to the limiter's queue, started again)               overlay, socket)
 *                 (a running Kubernetes runner — its own, or a stopped or dead instance's — is watched again, not lost)
 *   every 30 s ─> (periodic) unsupervised/vanished → Lost, a start cut short → queued again,
 *                 finished → teardown again, leftovers of jobs over/unknown → removed
 *   (a redelivered RunJob of a start cut short starts it at once; of a finished runner, re-announces
 *    its end under the first message ids)
 *
 *   Every state change and the message announcing it (JobProvisioning, RunnerStarted, RunnerFinished,
 *   RunnerDestroyed) are written in one SaveChanges (runners row + outbox); the dispatcher publishes,
 *   woken after the commit by the outbox's save interceptor (nobody signals it by hand).
 */
public static class ProvisionerExtensions
{
    public const string DatabaseName = "provisionerdb";

    /// <summary>Everything the Provisioner module needs, in one place.</summary>
    /// <param name="addMessaging">False when the host registers the bus itself (e.g. an all-in-one
    /// server with one MassTransit for every module); it must then call <see cref="AddProvisionerConsumers"/>.</param>
    public static IHostApplicationBuilder AddProvisioner(this IHostApplicationBuilder builder, bool addMessaging = true)
    {
        builder.AddModuleDbContext<ProvisionerDbContext>(DatabaseName);
        builder.AddJobTokens();
        var services = builder.Services;
        services.TryAddSingleton(TimeProvider.System);
        // Which installation this is (read from the database at start): everything made on the machine carries it.
        services.AddSingleton<Installation>();
        // Which instance this process is (its lease in the database): the runners it starts are its own.
        services.AddOptions<InstanceOptions>().BindConfiguration(InstanceOptions.Section);
        services.AddSingleton<ProvisionerInstance>();
        services.AddSingleton<InstanceLease>();
        services.AddSingleton<CancelRequests>();

        // Parts, back to front: backends, then what drives them.
        services.AddOptions<LocalSandboxOptions>().BindConfiguration(LocalSandboxOptions.Section);
        services.AddSingleton<IntakeEndpoint>();
        // The local sandbox is Linux-only (bubblewrap); elsewhere the provisioner runs without it.
        if (!OperatingSystem.IsWindows()) AddLocalSandbox(services);
        // Kubernetes runners only where a cluster is configured (section Provisioner:Kubernetes).
        services.AddKubernetesBackendIfConfigured(builder.Configuration);
        services.AddSingleton<RunnerBackends>();
        services.AddSingleton(sp => RunnerTemplateCatalog.FromConfiguration(builder.Configuration));
        services.AddSingleton<JobLocks>();
        // After a runner is destroyed, an independent check per backend confirms nothing is left (Provisioner:Teardown).
        services.AddOptions<TeardownOptions>().BindConfiguration(TeardownOptions.Section);
        services.AddMetrics();
        services.TryAddSingleton<TeardownMetrics>();
        services.AddSingleton<RunnerTeardown>();
        services.AddSingleton<RunnerReaper>();
        services.AddSingleton<RunnerSupervisor>();
        // Before a runner starts: the job's commit, checked against the cache's git mirror (Checkout:Enabled).
        services.AddOptions<CommitGateOptions>().BindConfiguration(CommitGateOptions.Section);
        services.AddSingleton<CommitGate>();
        // The RunJob pipeline (Scheduling/RunnerPipeline.cs), back to front: each stage knows only the next one's interface.
        services.AddScoped<IRunnerStarter, RunnerScheduler>();
        services.AddOptions<RunnerLimitOptions>().BindConfiguration(RunnerLimitOptions.Section);
        services.AddSingleton<LimitDecisions>();
        services.AddScoped<IRunnerAdmission, RunnerLimiter>();
        services.AddScoped<RunnerDeduplicator>();
        // The limiter's pump starts waiting jobs when a committed change frees a slot (RunnerSlotsInterceptor).
        services.AddSingleton<RunnerSlots>();
        services.AddSingleton<RunnerSlotsInterceptor>();
        services.ConfigureDbContext<ProvisionerDbContext>((sp, options) => options.AddInterceptors(sp.GetRequiredService<RunnerSlotsInterceptor>()));
        services.AddSingleton<WaitingRunnerPump>();
        // Operators drain an instance before maintenance and resume it (Apis/ProvisionerAdminApi.cs, Provisioner:AdminToken).
        services.AddSingleton<ProvisionerDrain>();
        services.AddOptions<ProvisionerAdminOptions>().BindConfiguration(ProvisionerAdminOptions.Section);
        services.AddSingleton<ProvisionerAdminTokenGate>();
        services.AddOptions<ReconcilerOptions>().BindConfiguration(ReconcilerOptions.Section);
        services.AddSingleton<StartupReconciler>();

        // Hosted services start in this order (and stop in reverse): the schema first, the
        // installation's id, then the reconciler, and only then the bus, so no message is handled on a stale picture.
        // On a graceful stop the reconciler stops before the supervisor lets go of its runners (it would take
        // them for unsupervised), and the lease is released last (InstanceLease.StopAsync).
        services.AddHostedService<ModuleDatabaseMigrator<ProvisionerDbContext>>();
        // Its gauges read the runner table: only once the schema is there.
        services.AddHostedService<EphemeralCI.Provisioner.Telemetry.ProvisionerTelemetry>();
        services.AddHostedService<InstallationLoader>();
        services.AddHostedService(sp => sp.GetRequiredService<InstanceLease>());
        services.AddHostedService(sp => sp.GetRequiredService<RunnerSupervisor>());
        services.AddHostedService(sp => sp.GetRequiredService<StartupReconciler>());
        services.AddHostedService(sp => sp.GetRequiredService<WaitingRunnerPump>());
        services.AddHostedService(sp => sp.GetRequiredService<CancelRequests>());
        if (!OperatingSystem.IsWindows()) AddWarmPoolService(services);
        builder.AddOutboxDispatcher<ProvisionerDbContext>();
        if (addMessaging) builder.AddEciMessaging(AddProvisionerConsumers);
        return builder;
    }

    [UnsupportedOSPlatform("windows")]
    private static void AddLocalSandbox(IServiceCollection services)
    {
        services.AddSingleton<LocalSandboxBackend>();
        services.AddSingleton<IRunnerBackend>(sp => sp.GetRequiredService<LocalSandboxBackend>());
        services.AddSingleton<ITeardownVerifier, LocalTeardownVerifier>();
        // Templates with warmPool > 0 get sandboxes started ahead of demand (after the reconciler's first pass).
        services.AddSingleton<WarmPool>();
        // What the pools hold now, read by the reporter that tells the intake (the web UI's Runners page).
        services.AddSingleton<IWarmPoolStatus>(sp => sp.GetRequiredService<WarmPool>());
        services.AddOptions<WarmPoolReportOptions>().BindConfiguration(WarmPoolReportOptions.Section)
            .Validate(o => o.Interval >= WarmPoolReport.MinInterval && o.Interval <= WarmPoolReport.MaxInterval,
                $"{WarmPoolReportOptions.Section}:Interval must be between {WarmPoolReport.MinInterval} and {WarmPoolReport.MaxInterval}")
            .ValidateOnStart();
    }

    [UnsupportedOSPlatform("windows")]
    private static void AddWarmPoolService(IServiceCollection services)
    {
        services.AddHostedService(sp => sp.GetRequiredService<WarmPool>());
        // Every Provisioner:WarmPoolReport:Interval, on the bus (WarmPoolReport), for the intake's Runners page.
        services.AddHostedService<WarmPoolReporter>();
    }

    /// <summary>The provisioner's consumers (queues <c>run-job</c> and <c>cancel-job</c>).</summary>
    public static void AddProvisionerConsumers(IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<RunJobConsumer>();
        bus.AddConsumer<CancelJobConsumer>();
    }

    /// <summary>The provisioner's HTTP API: operators' drain and resume (health comes from service defaults).</summary>
    public static IEndpointRouteBuilder MapProvisioner(this IEndpointRouteBuilder app)
    {
        app.MapProvisionerAdminApi();
        return app;
    }
}
