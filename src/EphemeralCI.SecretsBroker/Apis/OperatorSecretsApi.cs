using EphemeralCI.SecretsBroker.Infrastructure;
using Microsoft.Extensions.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace EphemeralCI.SecretsBroker.Apis;

/// <summary>An operator-only secret's current value, for the control plane.</summary>
public sealed record OperatorSecret(string Name, int Version, string Value);

/// <summary>
/// The control plane's read of operator-only secrets (<c>ECI_*</c>): the cache's forge credentials for its git
/// mirrors. On the admin listener only, behind <c>SecretsBroker:CacheToken</c>; every read audited. No job token
/// opens it, and the exchange refuses these names to every job.
/// </summary>
public static class OperatorSecretsApi
{
    public static IEndpointRouteBuilder MapOperatorSecretsApi(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/internal/v1/operator-secrets").WithTags("Operator secrets")
            .AdminListenerOnly()
            .AddEndpointFilter<CacheTokenGate>()
            .MapGet("/{name}", ReadAsync).WithName("ReadOperatorSecret")
            .WithSummary("The current value of an operator-only secret (ECI_*), for the cache's forge fetches")
            .ProducesProblem(StatusCodes.Status401Unauthorized);
        // The GitHub Actions adapter's own door: the App's key and webhook secret, not the cache's forge credentials.
        app.MapGroup("/internal/v1/github-app-secrets").WithTags("Operator secrets")
            .AdminListenerOnly()
            .AddEndpointFilter<GitHubActionsTokenGate>()
            .MapGet("/{name}", ReadGitHubAppSecretAsync).WithName("ReadGitHubAppSecret")
            .WithSummary("The current value of a GitHub App secret (ECI_GITHUB_*), for the GitHub Actions adapter")
            .ProducesProblem(StatusCodes.Status401Unauthorized);
        return app;
    }

    public static async Task<Results<Ok<OperatorSecret>, ValidationProblem, ProblemHttpResult>> ReadGitHubAppSecretAsync(
        string name, SecretStore store, HttpResponse response, CancellationToken ct)
    {
        if (!name.StartsWith(GitHubActionsTokenGate.NamePrefix, StringComparison.Ordinal))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                ["name"] = [$"must be a GitHub App secret name (starting with '{GitHubActionsTokenGate.NamePrefix}')"],
            });
        }
        return await ReadAsActorAsync(name, store, response, GitHubActionsTokenGate.Actor, ct);
    }

    public static Task<Results<Ok<OperatorSecret>, ValidationProblem, ProblemHttpResult>> ReadAsync(
        string name, SecretStore store, HttpResponse response, CancellationToken ct) => ReadAsActorAsync(name, store, response, CacheTokenGate.Actor, ct);

    private static async Task<Results<Ok<OperatorSecret>, ValidationProblem, ProblemHttpResult>> ReadAsActorAsync(
        string name, SecretStore store, HttpResponse response, string actor, CancellationToken ct)
    {
        response.Headers.CacheControl = "no-store";
        if (!SecretNames.IsValid(name) || !SecretNames.IsOperatorOnly(name))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                ["name"] = [$"must be an operator-only secret name (starting with '{SecretNames.OperatorOnlyPrefix}', letters, digits and '_')"],
            });
        }
        var secret = await store.ReadOperatorSecretAsync(name, actor, ct);
        return secret is { } s
            ? TypedResults.Ok(new OperatorSecret(name, s.Version, s.Value))
            : TypedResults.Problem($"No secret named '{name}'.", statusCode: StatusCodes.Status404NotFound, title: "Not found");
    }
}
