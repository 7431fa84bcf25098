using EphemeralCI.Cache.Entries;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.JobTokens;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Apis;

/// <summary>
/// What the cache served to one job attempt, for the intake's attestation (<see cref="ICacheUseLog"/> over HTTP).
/// On the admin listener, guarded by <c>Cache:AttestationToken</c>: runners never reach it.
/// </summary>
public static class CacheUsesApi
{
    public static IEndpointRouteBuilder MapCacheUsesApi(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/internal/v1").WithTags("CacheUses")
            .AdminListenerOnly()
            .AddEndpointFilter<CacheAttestationTokenGate>()
            .MapGet("/cache-uses", ListAsync).WithName("ListCacheUses")
            .WithSummary("Restores (hit or miss) and saves the cache answered for one job attempt, oldest first (intake only)")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status400BadRequest);
        return app;
    }

    public static async Task<Results<Ok<IReadOnlyList<CacheUseRecord>>, ProblemHttpResult>> ListAsync(
        Guid? jobId, int? attempt, CacheUseLog uses, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (jobId is null || jobId == Guid.Empty) errors["jobId"] = ["is required (a job id)"];
        if (attempt is not (>= 1 and <= JobTokenRequest.MaxAttempt)) errors["attempt"] = [$"is required, 1 to {JobTokenRequest.MaxAttempt}"];
        if (errors.Count > 0) return CacheProblems.Invalid(errors);
        return TypedResults.Ok(await uses.ForAttemptAsync(jobId!.Value, attempt!.Value, ct));
    }
}

/// <summary>Guards <see cref="CacheUsesApi"/> with <c>Cache:AttestationToken</c> (the intake's <c>Attestations:CacheToken</c>).</summary>
internal sealed class CacheAttestationTokenGate(IOptions<CacheOptions> options)
    : StaticCredentialGate(options.Value.AttestationToken, $"{CacheOptions.Section}:AttestationToken");
