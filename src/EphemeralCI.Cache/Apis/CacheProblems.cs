using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace EphemeralCI.Cache.Apis;

/// <summary>
/// RFC 9457 problem details that the protocol clients can read too: the Twirp client shows
/// <c>msg</c> (and branches on <c>code</c>), the v1 REST client shows <c>message</c>. So each problem
/// carries its detail under those names as well, and the field it is about under <c>field</c>.
/// </summary>
internal static class CacheProblems
{
    public static ProblemHttpResult Problem(int status, string title, string detail, string? field = null, string? twirpCode = null)
    {
        var extensions = new Dictionary<string, object?>
        {
            ["code"] = twirpCode ?? TwirpCodeOf(status),
            ["msg"] = detail,
            ["message"] = detail,
        };
        if (field is not null) extensions["field"] = field;
        return TypedResults.Problem(detail, statusCode: status, title: title, extensions: extensions);
    }

    public static ProblemHttpResult Invalid(Dictionary<string, string[]> errors)
    {
        var detail = string.Join("; ", errors.Select(e => $"{e.Key}: {string.Join(", ", e.Value)}"));
        var result = Problem(StatusCodes.Status400BadRequest, "Invalid request", detail, errors.Keys.First(), "invalid_argument");
        result.ProblemDetails.Extensions["errors"] = errors;
        return result;
    }

    public static ProblemHttpResult Invalid(string field, string reason) => Invalid(new Dictionary<string, string[]> { [field] = [reason] });

    public static ProblemHttpResult NotFound(string detail) => Problem(StatusCodes.Status404NotFound, "Not Found", detail);

    public static ProblemHttpResult Conflict(string detail, string twirpCode = "already_exists") =>
        Problem(StatusCodes.Status409Conflict, "Conflict", detail, twirpCode: twirpCode);

    public static ProblemHttpResult Forbidden(string detail) => Problem(StatusCodes.Status403Forbidden, "Forbidden", detail);

    public static ProblemHttpResult TooLarge(long limit) => Problem(StatusCodes.Status413PayloadTooLarge, "Payload Too Large",
        $"The upload exceeds the largest entry this cache stores ({limit} bytes, setting {CacheOptions.Section}:MaxObjectBytes, RepositoryQuotaBytes or ScopeQuotaBytes); nothing was stored.",
        "body", "resource_exhausted");

    public static ProblemHttpResult StorageUnavailable() => Problem(StatusCodes.Status503ServiceUnavailable, "Service Unavailable",
        "The cache's object storage did not answer; retry later.", twirpCode: "unavailable");

    private static string TwirpCodeOf(int status) => status switch
    {
        400 => "invalid_argument",
        401 => "unauthenticated",
        403 => "permission_denied",
        404 => "not_found",
        409 => "already_exists",
        412 => "failed_precondition",
        413 => "resource_exhausted",
        502 => "data_loss",
        503 => "unavailable",
        _ => "internal",
    };
}
