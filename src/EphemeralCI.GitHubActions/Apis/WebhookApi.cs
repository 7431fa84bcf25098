using System.Text.Json;
using EphemeralCI.GitHubActions.GitHub;
using EphemeralCI.GitHubActions.Infrastructure;
using EphemeralCI.GitHubActions.Model;
using EphemeralCI.GitHubActions.Services;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace EphemeralCI.GitHubActions.Apis;

/// <summary>
/// <c>POST /github/webhook</c>: GitHub's deliveries. Nothing is read or stored before the HMAC signature over the raw
/// body checks out; a delivery id seen before is answered 200 and not handled again.
/// </summary>
public static class WebhookApi
{
    private const int MaxBodyBytes = 1 << 20;

    public static IEndpointRouteBuilder MapGitHubWebhookApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/github/webhook", ReceiveAsync).WithName("GitHubWebhook").WithTags("GitHub Actions")
            .WithSummary("GitHub App webhook deliveries (workflow_job), signed with X-Hub-Signature-256")
            .AllowAnonymous()
            .DisableAntiforgery()
            .ProducesProblem(StatusCodes.Status401Unauthorized);
        return app;
    }

    public static async Task<Results<Ok<string>, Accepted, ValidationProblem, ProblemHttpResult>> ReceiveAsync(
        HttpRequest request, IGitHubAppSecrets secrets, IOptions<GitHubActionsOptions> options,
        GitHubActionsDbContext db, WorkflowJobs workflowJobs, TimeProvider clock, CancellationToken ct)
    {
        if (request.ContentLength > MaxBodyBytes) return TypedResults.Problem("The delivery is larger than 1 MiB.", statusCode: StatusCodes.Status413PayloadTooLarge);
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, ct);
        if (buffer.Length > MaxBodyBytes) return TypedResults.Problem("The delivery is larger than 1 MiB.", statusCode: StatusCodes.Status413PayloadTooLarge);
        var body = buffer.ToArray();

        var secret = await secrets.ReadAsync(options.Value.WebhookSecret, ct);
        if (secret is null || !WebhookSignature.IsValid(secret, body, request.Headers[WebhookSignature.Header]))
        {
            return TypedResults.Problem($"The {WebhookSignature.Header} header is missing or does not match the body.",
                statusCode: StatusCodes.Status401Unauthorized, title: "Bad signature");
        }

        var deliveryId = request.Headers["X-GitHub-Delivery"].ToString();
        var eventName = request.Headers["X-GitHub-Event"].ToString();
        if (deliveryId.Length is 0 or > 100) return Invalid("X-GitHub-Delivery", "must be the delivery's id (1 to 100 characters)");
        if (eventName == "ping") return TypedResults.Ok("pong");
        if (eventName != "workflow_job") return TypedResults.Accepted((string?)null);

        WorkflowJobEvent? e;
        try
        {
            e = Parse(body);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return Invalid("body", "must be a workflow_job delivery (action, workflow_job, repository, installation)");
        }
        if (e is null) return TypedResults.Accepted((string?)null);

        if (!await db.TryRecordDeliveryAsync(deliveryId, eventName, clock.GetUtcNow(), ct)) return TypedResults.Ok("duplicate delivery");
        await workflowJobs.ObserveAsync(e, ct);
        return TypedResults.Accepted((string?)null);
    }

    /// <summary>The fields the adapter uses; null for an action it does not act on.</summary>
    internal static WorkflowJobEvent? Parse(byte[] body)
    {
        using var doc = JsonDocument.Parse(body);
        var root = doc.RootElement;
        var action = root.GetProperty("action").GetString();
        if (action is not ("queued" or "in_progress" or "completed" or "waiting")) return null;
        var job = root.GetProperty("workflow_job");
        var branch = job.TryGetProperty("head_branch", out var b) && b.ValueKind == JsonValueKind.String ? b.GetString()! : "";
        return new WorkflowJobEvent(
            job.GetProperty("id").GetInt64(),
            job.GetProperty("run_id").GetInt64(),
            root.GetProperty("installation").GetProperty("id").GetInt64(),
            root.GetProperty("repository").GetProperty("full_name").GetString()!,
            BranchRef(branch),
            job.GetProperty("head_sha").GetString()!,
            job.GetProperty("labels").EnumerateArray().Select(l => l.GetString()!).ToList(),
            action == "waiting" ? "queued" : action,
            job.TryGetProperty("runner_name", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null);
    }

    internal static string BranchRef(string branch) => branch.StartsWith("refs/", StringComparison.Ordinal) ? branch : "refs/heads/" + branch;

    private static ValidationProblem Invalid(string field, string reason) =>
        TypedResults.ValidationProblem(new Dictionary<string, string[]> { [field] = [reason] });
}
