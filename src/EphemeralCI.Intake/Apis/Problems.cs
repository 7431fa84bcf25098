using System.Security.Claims;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.Intake.Auth;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace EphemeralCI.Intake.Apis;

/// <summary>The intake's RFC 9457 answers that are used in more than one place.</summary>
internal static class Problems
{
    // ProblemHttpResult rather than NotFound<ProblemDetails>: only it answers application/problem+json.
    public static ProblemHttpResult JobNotFound(Guid id) => NotFound("Job not found", $"There is no job {id}.");

    public static ProblemHttpResult NotFound(string title, string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: title, detail: detail);

    public static ProblemHttpResult BadRequest(string title, string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: title, detail: detail);

    public static ProblemHttpResult Conflict(string title, string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: title, detail: detail, extensions: extensions);

    public static ProblemHttpResult TooLarge(int maxBytes) => TypedResults.Problem(
        statusCode: StatusCodes.Status413PayloadTooLarge,
        title: "Request body too large",
        detail: $"The body must be at most {maxBytes} bytes.",
        extensions: new Dictionary<string, object?> { ["maxBytes"] = maxBytes });

    public static ProblemHttpResult BadJson(string path, string detail) => TypedResults.Problem(
        statusCode: StatusCodes.Status400BadRequest,
        title: "Malformed JSON",
        detail: detail,
        extensions: new Dictionary<string, object?> { ["errors"] = new Dictionary<string, string[]> { [path] = ["is not valid JSON for this field"] } });

    /// <summary>422: the request is well-formed but names something that cannot be used.</summary>
    public static ProblemHttpResult UnprocessableField(string field, string title, string detail) => TypedResults.Problem(
        statusCode: StatusCodes.Status422UnprocessableEntity,
        title: title,
        detail: detail,
        extensions: new Dictionary<string, object?> { ["errors"] = new Dictionary<string, string[]> { [field] = [detail] } });

    /// <summary>403: the caller may not claim this value of the field (a repository, ref, template or environment outside its bindings).</summary>
    public static ProblemHttpResult ForbiddenField(string field, string detail) => TypedResults.Problem(
        statusCode: StatusCodes.Status403Forbidden,
        title: $"Not allowed to claim this {field}",
        detail: detail,
        extensions: new Dictionary<string, object?> { ["field"] = field, ["errors"] = new Dictionary<string, string[]> { [field] = [detail] } });

    /// <summary>403: a runner report without the key of the agent that fetched the job.</summary>
    public static ProblemHttpResult NotTheAgent() => TypedResults.Problem(
        statusCode: StatusCodes.Status403Forbidden,
        title: "Not the job's agent",
        detail: $"Runner reports must carry the {RunnerApiHeaders.AgentKey} header the agent sent when it fetched the job.",
        extensions: new Dictionary<string, object?> { ["errors"] = new Dictionary<string, string[]> { [RunnerApiHeaders.AgentKey] = ["is missing or is not the key of the agent that fetched this job"] } });

    public static Guid ApiKeyId(this ClaimsPrincipal user) =>
        Guid.TryParse(user.FindFirst(ApiKeyAuthenticationHandler.ApiKeyIdClaim)?.Value, out var id)
            ? id
            : throw new InvalidOperationException("endpoint reached without an API key principal");
}
