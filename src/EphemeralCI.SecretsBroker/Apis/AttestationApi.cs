using System.Text.Json;
using System.Text.Json.Nodes;
using EphemeralCI.Attestations;
using EphemeralCI.SecretsBroker.Attestations;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;

namespace EphemeralCI.SecretsBroker.Apis;

/// <summary>The intake's request: the job and its statement (the broker adds the secrets it issued).</summary>
public sealed record SignAttestationRequest(Guid JobId, JsonObject? Statement);

public static class AttestationApi
{
    /// <summary>Largest statement accepted: a job's statement is a few kilobytes.</summary>
    public const int MaxBodyBytes = 256 * 1024;

    public static IEndpointRouteBuilder MapAttestationApi(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/internal/v1").WithTags("Job attestations")
            .AdminListenerOnly()
            .AddEndpointFilter<AttestationTokenGate>()
            .MapPost("/attestations", SignAsync).WithName("SignJobAttestation")
            .WithSummary("Sign a job's in-toto statement as a DSSE envelope with the job-token key ring (intake only)")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesValidationProblem();
        return app;
    }

    public static async Task<Results<Ok<DsseEnvelope>, ValidationProblem, ProblemHttpResult>> SignAsync(
        HttpRequest http, BrokerAttestationSigner signer, CancellationToken ct)
    {
        if (http.ContentLength is > MaxBodyBytes)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "Statement too large", detail: $"at most {MaxBodyBytes} bytes");
        }
        SignAttestationRequest? request;
        try
        {
            request = await JsonSerializer.DeserializeAsync<SignAttestationRequest>(http.Body, AttestationFormat.Json, ct);
        }
        catch (JsonException ex)
        {
            return Invalid("body", $"is not valid JSON: {ex.Message}");
        }
        if (request is null) return Invalid("body", "is required");
        if (request.JobId == Guid.Empty) return Invalid("jobId", "is required");
        if (request.Statement is null) return Invalid("statement", "is required");
        try
        {
            return TypedResults.Ok(await signer.SignAsync(new AttestationRequest(request.JobId, request.Statement), ct));
        }
        catch (AttestationRequestException ex)
        {
            return Invalid("statement", ex.Message);
        }
    }

    private static ValidationProblem Invalid(string field, string reason) =>
        TypedResults.ValidationProblem(new Dictionary<string, string[]> { [field] = [reason] });
}
