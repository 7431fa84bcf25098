using EphemeralCI.SecretsBroker.Telemetry;
using EphemeralCI.JobTokens;
using EphemeralCI.SecretsBroker.Audit;
using EphemeralCI.SecretsBroker.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.SecretsBroker.Apis;

/// <summary>What a runner asks for: the names its job spec lists under <c>secrets</c>.</summary>
public sealed record SecretsExchangeRequest(IReadOnlyList<string>? Secrets);

/// <summary>What a runner receives for its job token.</summary>
/// <param name="JobId">The job the token was minted for.</param>
/// <param name="Secrets">Secret name → value, only those requested that policy admits for this job's repository and ref.</param>
/// <param name="Denied">Requested names that were refused (unknown or not allowed), with a short reason.</param>
public sealed record SecretsExchangeResponse(Guid JobId, IReadOnlyDictionary<string, string> Secrets, IReadOnlyDictionary<string, string>? Denied = null);

public static class ExchangeApi
{
    public static RouteGroupBuilder MapExchangeApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1/secrets")
            .WithTags("Secrets")
            .AddEndpointFilter<JobTokenGate>();

        api.MapPost("/exchange", ExchangeAsync)
            .WithName("ExchangeJobToken")
            .WithSummary("Exchange a job token for the job's secrets, exactly once")
            .WithDescription("A token can be exchanged once; a second exchange is a replay and is refused with 409. A token of a job that has ended is refused with 401.")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status409Conflict);

        return api;
    }

    public static async Task<Results<Ok<SecretsExchangeResponse>, ProblemHttpResult>> ExchangeAsync(
        HttpContext http, SecretsExchangeRequest? request, ITokenReplayGuard replayGuard,
        SecretStore store, SecretsDbContext db, TimeProvider clock, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var token = http.JobToken();
        var job = new JobTokenIdentity(token.JobId, token.Repository, token.Ref, token.Environment, token.TokenId, token.Attempt);
        var log = loggers.CreateLogger(typeof(ExchangeApi));
        if (string.IsNullOrEmpty(token.TokenId))
        {
            // Without an id a token cannot be made single-use, so it is not acceptable here.
            return TypedResults.Problem("The job token has no token id (jti) and cannot be exchanged.",
                statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized");
        }
        var requested = request?.Secrets ?? [];
        var invalid = requested.FirstOrDefault(n => !SecretNames.IsValid(n));
        if (invalid is not null || requested.Count > 100)
        {
            return TypedResults.Problem(
                invalid is not null ? $"secrets: '{Truncate(invalid)}' is not a valid secret name." : "secrets: at most 100 names.",
                statusCode: StatusCodes.Status400BadRequest, title: "Invalid request");
        }

        // A revoked token (its job ended) never gets here: JobTokenGate refuses it and RevokedExchangeAudit records it.

        // Consume first, then hand out: if anything after this fails the token is spent, which fails
        // closed (the runner's job fails) instead of letting a retry race a thief.
        if (!await replayGuard.TryConsumeAsync(token.TokenId, token.ExpiresAt, cancellationToken))
        {
            db.Audit(clock, job.Actor, AuditActions.ExchangeReplayed, null, job.JobId, job.Repository, job.Ref, job.TokenId, "second exchange refused", job.Attempt);
            await db.SaveChangesAsync(cancellationToken);
            log.LogWarning("Job {JobId} presented an already exchanged token (replay refused)", token.JobId);
            SecretsBrokerTelemetry.Replayed();
            return TypedResults.Problem("This job token was already exchanged; each token can be exchanged once.",
                statusCode: StatusCodes.Status409Conflict, title: "token already exchanged (replay)");
        }

        var grant = await store.ResolveAsync(job, requested, cancellationToken);
        log.LogInformation("Job {JobId} exchanged its token: {Granted} secrets granted, {Denied} denied", token.JobId, grant.Granted.Count, grant.Denied.Count);
        SecretsBrokerTelemetry.Exchange(grant.Granted.Count, grant.Denied.Count);
        return TypedResults.Ok(new SecretsExchangeResponse(token.JobId, grant.Granted, grant.Denied));
    }

    private static string Truncate(string s) => s.Length > 64 ? s[..64] + "…" : s;

}

/// <summary>Secret names double as environment variable names in the runner, so they are restricted to what a shell accepts.</summary>
public static class SecretNames
{
    /// <summary>Names starting with this (any case) are the operator's: read by the control plane, never handed to a job.</summary>
    public const string OperatorOnlyPrefix = "ECI_";

    public static bool IsValid(string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= 128 && (char.IsAsciiLetter(name[0]) || name[0] == '_')
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    /// <summary>
    /// An operator-only secret (a forge token, a deploy key): whatever its policy says, no job token exchanges it;
    /// only the control plane reads it, through <c>GET /internal/v1/operator-secrets/{name}</c>.
    /// </summary>
    public static bool IsOperatorOnly(string name) => name.StartsWith(OperatorOnlyPrefix, StringComparison.OrdinalIgnoreCase);
}

/// <summary>The broker's record of a revoked token that <see cref="JobTokenGate"/> refused: an audit line and a warning.</summary>
internal sealed class RevokedExchangeAudit(SecretsDbContext db, TimeProvider clock, ILoggerFactory loggers) : IRevokedJobTokenAudit
{
    public async Task RecordAsync(JobTokenClaims token, CancellationToken cancellationToken)
    {
        var job = new JobTokenIdentity(token.JobId, token.Repository, token.Ref, token.Environment, token.TokenId, token.Attempt);
        db.Audit(clock, job.Actor, AuditActions.ExchangeDenied, null, job.JobId, job.Repository, job.Ref, job.TokenId, "job ended: token revoked", job.Attempt);
        await db.SaveChangesAsync(cancellationToken);
        SecretsBrokerTelemetry.Revoked();
        loggers.CreateLogger(typeof(ExchangeApi)).LogWarning("Job {JobId} presented a revoked token (job ended)", token.JobId);
    }
}
