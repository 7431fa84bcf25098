using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;

namespace EphemeralCI.AppHost;

/// <summary>
/// The GitHub Actions adapter, only when <c>GitHubActions:AppId</c> is configured (docs/github-actions.md). Its own
/// database; its own broker credential, which opens the App's secrets (<c>ECI_GITHUB_*</c>) and nothing else; its own
/// intake API key (parameter <c>github-actions-intake-key</c>: create it bound to the served repositories and the
/// adapter's runner templates), so it can submit jobs for those and claim nothing else.
/// </summary>
public static class GitHubActionsExtensions
{
    public const string DatabaseName = "githubactionsdb";

    public static bool IsConfigured(IConfiguration configuration) => !string.IsNullOrWhiteSpace(configuration["GitHubActions:AppId"]);

    public static void AddGitHubActionsAdapter(
        this IDistributedApplicationBuilder builder, EphemeralCIInfrastructure infra,
        IResourceBuilder<ProjectResource> intake, IResourceBuilder<ProjectResource> secretsBroker, string brokerUrl)
    {
        if (!IsConfigured(builder.Configuration)) return;
        var brokerToken = builder.AddParameter("secrets-github-actions-token",
            new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true, persist: true);
        var intakeKey = builder.AddParameter("github-actions-intake-key", secret: true);
        secretsBroker.WithEnvironment("SecretsBroker__GitHubActionsToken", brokerToken);

        var adapter = builder.AddProject<Projects.EphemeralCI_GitHubActions_Host>("github-actions")
            .WithHttpHealthCheck("/health")
            // GitHub delivers webhooks to it from the internet.
            .WithExternalHttpEndpoints()
            .WithReference(infra.GitHubActionsDb!).WaitFor(infra.GitHubActionsDb!)
            .WithReference(intake).WaitFor(intake)
            .WithReference(secretsBroker).WaitFor(secretsBroker)
            .WithEnvironment("GitHubActions__IntakeUrl", intake.GetEndpoint("http"))
            .WithEnvironment("GitHubActions__IntakeApiKey", intakeKey)
            .WithEnvironment("GitHubActions__SecretsBrokerUrl", brokerUrl)
            .WithEnvironment("GitHubActions__SecretsBrokerToken", brokerToken);
        // The adapter's settings (App id, repositories, templates) as the operator gave them to the AppHost.
        foreach (var (key, value) in builder.Configuration.GetSection("GitHubActions").AsEnumerable(makePathsRelative: true))
        {
            if (value is not null) adapter.WithEnvironment("GitHubActions__" + key.Replace(":", "__"), value);
        }
    }
}
