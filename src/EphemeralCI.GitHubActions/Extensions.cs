using System.Net.Http.Headers;
using EphemeralCI.GitHubActions.Apis;
using EphemeralCI.GitHubActions.GitHub;
using EphemeralCI.GitHubActions.Infrastructure;
using EphemeralCI.GitHubActions.Services;
using EphemeralCI.GitHubActions.Telemetry;
using EphemeralCI.Persistence;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace EphemeralCI.GitHubActions;

/*
 * The GitHub Actions runner adapter: one-job EphemeralCI runners for a GitHub App's workflow jobs.
 *
 *   GitHub ──workflow_job webhook (HMAC)──> WebhookApi ── dedupe (X-GitHub-Delivery) ──> WorkflowJobs.Observe ──> row per workflow job
 *                                                                                           │ (state machine, version-checked)
 *   GitHubActionsReconciler ── queued runs' jobs (missed webhooks) ──────────────────────────┤
 *                           └─ every open row ───────────────────────> RunnerLauncher <── LaunchQueue / LaunchWorker
 *        queued: claim → App JWT → installation token → generate-jitconfig → IRunnerJobs.Submit (one step: run.sh --jitconfig "$GITHUB_JIT_CONFIG")
 *        over:   cancel a job that never ran → DELETE the runner at GitHub → done
 *   WarmRunnerPool (each pass; at once when a warm runner takes a job): MinIdle idle runners per template × repository/org,
 *        slot claimed by a unique insert → generate-jitconfig (no workflow job) → job; busy ones leave, stale ones recycled
 *
 * Off unless GitHubActions:AppId is set. The App's private key and webhook secret come from the secrets broker
 * (IGitHubAppSecrets); the jobs go to the intake (IRunnerJobs): the all-in-one server registers in-process ones.
 */
public static class GitHubActionsExtensions
{
    /// <summary>Name of the database connection string (<c>ConnectionStrings:githubactionsdb</c>).</summary>
    public const string DatabaseName = "githubactionsdb";

    /// <summary>Adds the adapter when <c>GitHubActions:AppId</c> is configured; false (nothing added) otherwise.</summary>
    public static bool AddGitHubActions(this IHostApplicationBuilder builder)
    {
        var section = builder.Configuration.GetSection(GitHubActionsOptions.Section);
        if (string.IsNullOrWhiteSpace(section[nameof(GitHubActionsOptions.AppId)])) return false;

        var services = builder.Services;
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<GitHubActionsOptions>().BindConfiguration(GitHubActionsOptions.Section)
            .Validate(o => o.Templates.Count > 0, $"Configuration setting '{GitHubActionsOptions.Section}:Templates' must name at least one template.")
            .Validate(o => o.Templates.Values.All(t => t.Labels.Count > 0 && !string.IsNullOrWhiteSpace(t.RunnerTemplate)),
                $"Every '{GitHubActionsOptions.Section}:Templates:<name>' needs 'RunnerTemplate' and at least one of 'Labels'.")
            .Validate(o => o.Repositories.Count > 0, $"Configuration setting '{GitHubActionsOptions.Section}:Repositories' must list the repositories served (owner/name).")
            .Validate(o => o.PrivateKeySecret.StartsWith("ECI_GITHUB_", StringComparison.Ordinal) && o.WebhookSecret.StartsWith("ECI_GITHUB_", StringComparison.Ordinal),
                $"Configuration settings '{GitHubActionsOptions.Section}:PrivateKeySecret' and 'WebhookSecret' must name operator-only secrets starting with 'ECI_GITHUB_' (the only ones this service's broker token opens).")
            .Validate(o => o.Templates.Values.All(t => t.MinIdle is >= 0 and <= GitHubRunnerTemplate.MaxMinIdle && t.MaxIdleAge > TimeSpan.Zero),
                $"Every '{GitHubActionsOptions.Section}:Templates:<name>:MinIdle' must be between 0 and {GitHubRunnerTemplate.MaxMinIdle}, and its 'MaxIdleAge' positive.")
            .Validate(o => o.ReconcileInterval > TimeSpan.Zero, $"Configuration setting '{GitHubActionsOptions.Section}:ReconcileInterval' must be positive.")
            .Validate(o => o.MaxListPages is > 0 and <= 1000, $"Configuration setting '{GitHubActionsOptions.Section}:MaxListPages' must be between 1 and 1000.")
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<GitHubActionsOptions>, InvalidRepositories>();
        services.AddSingleton<GitHubActionsMetrics>();

        if (!services.Any(d => d.ServiceType == typeof(DbContextOptions<GitHubActionsDbContext>)))
        {
            builder.AddModuleDbContext<GitHubActionsDbContext>(DatabaseName, o => o.UseSnakeCaseNamingConvention());
        }
        var apiUrl = section[nameof(GitHubActionsOptions.ApiUrl)] ?? "https://api.github.com";
        services.AddSingleton<InstallationTokenCache>();
        services.AddHttpClient<GitHubAppClient>(http =>
        {
            http.BaseAddress = new Uri(apiUrl.TrimEnd('/') + "/");
            http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/vnd.github+json"));
            http.DefaultRequestHeaders.Add("X-GitHub-Api-Version", "2022-11-28");
            http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("EphemeralCI", "1.0"));
        });
        // A service reaches the broker and the intake over HTTP with credentials of its own; the server registers in-process ones first.
        if (!services.Any(d => d.ServiceType == typeof(IGitHubAppSecrets)))
        {
            services.AddHttpClient<IGitHubAppSecrets, HttpGitHubAppSecrets>(http =>
            {
                http.BaseAddress = new Uri(Required(builder, "SecretsBrokerUrl").TrimEnd('/') + "/");
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Required(builder, "SecretsBrokerToken"));
            });
        }
        if (!services.Any(d => d.ServiceType == typeof(IRunnerJobs)))
        {
            services.AddHttpClient<IRunnerJobs, HttpRunnerJobs>(http =>
            {
                http.BaseAddress = new Uri(Required(builder, "IntakeUrl").TrimEnd('/') + "/");
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Required(builder, "IntakeApiKey"));
            });
        }
        services.AddSingleton<LaunchQueue>();
        services.AddSingleton<WorkflowJobs>();
        services.AddScoped<RunnerLauncher>();
        services.AddScoped<WarmRunnerPool>();
        // Migrations first: hosted services start in order.
        services.AddHostedService<ModuleDatabaseMigrator<GitHubActionsDbContext>>();
        services.AddHostedService<LaunchWorker>();
        services.AddSingleton<GitHubActionsReconciler>();
        services.AddHostedService(sp => sp.GetRequiredService<GitHubActionsReconciler>());
        return true;
    }

    public static IEndpointRouteBuilder MapGitHubActions(this IEndpointRouteBuilder app)
    {
        if (app.ServiceProvider.GetService<WorkflowJobs>() is null) return app;
        app.MapGitHubWebhookApi();
        return app;
    }

    private static string Required(IHostApplicationBuilder builder, string key) =>
        builder.Configuration[$"{GitHubActionsOptions.Section}:{key}"] is { Length: > 0 } value ? value
            : throw new InvalidOperationException($"Configuration setting '{GitHubActionsOptions.Section}:{key}' is missing (the GitHub Actions adapter is on: GitHubActions:AppId is set).");

    /// <summary>A bad allow-list entry fails the start naming its setting (template and index).</summary>
    private sealed class InvalidRepositories : IValidateOptions<GitHubActionsOptions>
    {
        public ValidateOptionsResult Validate(string? name, GitHubActionsOptions options)
        {
            foreach (var (template, t) in options.Templates)
            {
                for (var i = 0; i < t.Repositories.Count; i++)
                {
                    if (!GitHubRunnerTemplate.IsRepositoryPattern(t.Repositories[i]))
                        return ValidateOptionsResult.Fail($"Configuration setting '{GitHubActionsOptions.Section}:Templates:{template}:Repositories:{i}' ('{t.Repositories[i]}') must be owner/name or owner/* (a '*' only as the whole repository name).");
                }
            }
            return ValidateOptionsResult.Success;
        }
    }
}
