using System.Security.Claims;
using EphemeralCI.Intake.Auth;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace EphemeralCI.Intake.Apis;

/// <summary>The intake's RFC 9457 answers that are used in more than one place.</summary>
internal static class Problems
{
    public static NotFound<ProblemDetails> JobNotFound(Guid id) => TypedResults.NotFound(new ProblemDetails
    {
        Status = StatusCodes.Status404NotFound,
        Title = "Job not found",
        Detail = $"There is no job {id}.",
    });

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

    public static Guid ApiKeyId(this ClaimsPrincipal user) =>
        Guid.TryParse(user.FindFirst(ApiKeyAuthenticationHandler.ApiKeyIdClaim)?.Value, out var id)
            ? id
            : throw new InvalidOperationException("endpoint reached without an API key principal");
}
