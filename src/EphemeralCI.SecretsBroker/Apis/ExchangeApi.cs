using EphemeralCI.SecretsBroker.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.SecretsBroker.Apis;

/// <summary>What a runner receives for its job token.</summary>
/// <param name="JobId">The job the token was minted for.</param>
/// <param name="Secrets">
/// Secret name → value. Always empty for now: no secret store exists yet (issue 4 adds encrypted
/// secrets bound by policy to repository and ref; this endpoint will then fill the map).
/// </param>
public sealed record SecretsExchangeResponse(Guid JobId, IReadOnlyDictionary<string, string> Secrets);

public static partial class ExchangeApi
{
    public static RouteGroupBuilder MapExchangeApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1/secrets")
            .WithTags("Secrets")
            .AddEndpointFilter<JobTokenGate>();

        api.MapPost("/exchange", ExchangeAsync)
            .WithName("ExchangeJobToken")
            .WithSummary("Exchange a job token for the job's secrets, exactly once")
            .WithDescription("A token can be exchanged once; a second exchange is a replay and is refused with 409.")
            .ProducesProblem(StatusCodes.Status401Unauthorized);

        return api;
    }

    public static async Task<Results<Ok<SecretsExchangeResponse>, ProblemHttpResult>> ExchangeAsync(
        HttpContext http, ITokenReplayGuard replayGuard, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var token = http.JobToken();
        var log = loggers.CreateLogger(typeof(ExchangeApi));
        if (string.IsNullOrEmpty(token.TokenId))
        {
            // Without an id a token cannot be made single-use, so it is not acceptable here.
            return TypedResults.Problem("The job token has no token id (jti) and cannot be exchanged.",
                statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized");
        }

        // Consume first, then hand out: if anything after this fails the token is spent, which fails
        // closed (the runner's job fails) instead of letting a retry race a thief.
        if (!await replayGuard.TryConsumeAsync(token.TokenId, token.ExpiresAt, cancellationToken))
        {
            LogReplay(log, token.JobId);
            return TypedResults.Problem("This job token was already exchanged; each token can be exchanged once.",
                statusCode: StatusCodes.Status409Conflict, title: "token already exchanged (replay)");
        }

        LogExchanged(log, token.JobId);
        return TypedResults.Ok(new SecretsExchangeResponse(token.JobId, new Dictionary<string, string>()));
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Job {JobId} exchanged its token")]
    private static partial void LogExchanged(ILogger logger, Guid jobId);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Job {JobId} presented an already exchanged token (replay refused)")]
    private static partial void LogReplay(ILogger logger, Guid jobId);
}
