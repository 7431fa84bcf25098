using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;

namespace EphemeralCI.AppHost;

/// <summary>
/// What the Aspire dashboard offers an operator on each service, beyond start and stop: links to the API reference,
/// and commands that are each one call to an API the service exposes, with the same credential an operator would use
/// (a generated parameter, shown only as a secret). Nothing here reaches into a service's database.
/// </summary>
internal static class ResourceCommands
{
    public const string RunHelloJob = "run-hello-job";
    public const string RotateSigningKey = "rotate-signing-key";
    public const string Drain = "drain";
    public const string Resume = "resume";
    public const string CacheUsage = "cache-usage";

    /// <summary>The API reference (Scalar) as a link; with a bootstrap admin key, "run a hello job" (the example of examples/hello-world.yml).</summary>
    public static IResourceBuilder<ProjectResource> WithIntakeCommands(this IResourceBuilder<ProjectResource> intake, IConfiguration configuration)
    {
        intake.WithUrlForEndpoint("http", url => url.DisplayText = "API")
            .WithUrls(context =>
            {
                if (context.Urls.FirstOrDefault(u => u.Endpoint?.EndpointName == "http") is { } api)
                {
                    context.Urls.Add(new ResourceUrlAnnotation { Url = api.Url.TrimEnd('/') + "/scalar", DisplayText = "API reference (Scalar)" });
                }
            });
        // The command submits as the bootstrap admin; without one configured there is no key to submit with.
        if (configuration["EphemeralCI:BootstrapAdminKey"] is not { Length: > 0 } adminKey) return intake;
        return intake.WithHttpCommand("/api/v1/jobs", "Run a hello job", commandName: RunHelloJob, commandOptions: new HttpCommandOptions
        {
            Description = "Submits a two-step job to a brand-new runner; its id and log address are in the result",
            IconName = "Play",
            Method = HttpMethod.Post,
            PrepareRequest = context =>
            {
                context.Request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
                context.Request.Content = JsonContent.Create(new
                {
                    name = "hello from the dashboard",
                    repository = "ephemeralci/examples",
                    @ref = "refs/heads/main",
                    // No checkout: the job looks at nothing of the repository, so a placeholder commit is enough
                    // (with commit verification against a forge turned on, the intake refuses it and the result says why).
                    commitSha = "0000000000000000000000000000000000000001",
                    runnerTemplate = "default",
                    timeoutSeconds = 300,
                    steps = new[]
                    {
                        new { name = "greet", run = "echo \"hello from a runner that did not exist a moment ago\"" },
                        new { name = "look around", run = "echo \"user: $(id -u), workspace: $PWD\"; uname -a" },
                    },
                });
                return Task.CompletedTask;
            },
            GetCommandResult = async context =>
            {
                var body = await context.Response.Content.ReadAsStringAsync(context.CancellationToken);
                if (!context.Response.IsSuccessStatusCode) return CommandResults.Failure($"the intake answered {(int)context.Response.StatusCode}: {body}");
                var id = JsonDocument.Parse(body).RootElement.GetProperty("id").GetString();
                var logs = new Uri(context.Endpoint.Url.TrimEnd('/') + $"/api/v1/jobs/{id}/logs");
                return CommandResults.Success($"job {id} submitted; its log: {logs}", new CommandResultData { Value = body, Format = CommandResultFormat.Json });
            },
        });
    }

    /// <summary>"Rotate signing key": a new key signs job tokens and attestations from now on.</summary>
    public static IResourceBuilder<ProjectResource> WithSecretsBrokerCommands(this IResourceBuilder<ProjectResource> broker, IResourceBuilder<ParameterResource> adminToken) =>
        broker.WithHttpCommand("/api/v1/admin/signing-keys/rotate", "Rotate signing key", commandName: RotateSigningKey, commandOptions: new HttpCommandOptions
        {
            Description = "A new ES256 key signs from now on; the old one stays published for the overlap, its private half destroyed",
            ConfirmationMessage = "Rotate the job token and attestation signing key now?",
            IconName = "KeyReset",
            Method = HttpMethod.Post,
            PrepareRequest = Bearer(adminToken),
            ResultMode = HttpCommandResultMode.Json,
        });

    /// <summary>"Drain" (start no new runner, let the running ones finish) and "Resume".</summary>
    public static IResourceBuilder<ProjectResource> WithProvisionerCommands(this IResourceBuilder<ProjectResource> provisioner, IResourceBuilder<ParameterResource> adminToken) =>
        provisioner
            .WithHttpCommand("/provisioner/admin/drain", "Drain", commandName: Drain, commandOptions: new HttpCommandOptions
            {
                Description = "Start no new runner here (jobs wait for another instance, or for Resume); running ones finish",
                ConfirmationMessage = "Drain this provisioner? New jobs wait until it resumes or another instance takes them.",
                IconName = "Pause",
                Method = HttpMethod.Post,
                PrepareRequest = Bearer(adminToken),
                ResultMode = HttpCommandResultMode.Json,
            })
            .WithHttpCommand("/provisioner/admin/resume", "Resume", commandName: Resume, commandOptions: new HttpCommandOptions
            {
                Description = "Start runners again, beginning with the jobs that wait",
                IconName = "Play",
                Method = HttpMethod.Post,
                PrepareRequest = Bearer(adminToken),
                ResultMode = HttpCommandResultMode.Json,
            });

    /// <summary>"Cache usage": stored bytes and entries per repository, against the quota.</summary>
    public static IResourceBuilder<ProjectResource> WithCacheCommands(this IResourceBuilder<ProjectResource> cache, IResourceBuilder<ParameterResource> adminToken) =>
        cache.WithHttpCommand("/cache/admin/usage", "Cache usage", commandName: CacheUsage, commandOptions: new HttpCommandOptions
        {
            Description = "Stored bytes and entries per repository, against the quota",
            IconName = "DataUsage",
            Method = HttpMethod.Get,
            PrepareRequest = Bearer(adminToken),
            ResultMode = HttpCommandResultMode.Json,
        });

    private static Func<HttpCommandRequestContext, Task> Bearer(IResourceBuilder<ParameterResource> token) => async context =>
        context.Request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await token.Resource.GetValueAsync(context.CancellationToken));
}
