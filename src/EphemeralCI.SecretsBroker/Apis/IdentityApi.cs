using Microsoft.Extensions.Hosting;
using EphemeralCI.JobTokens;
using EphemeralCI.SecretsBroker.Identity;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace EphemeralCI.SecretsBroker.Apis;

/// <summary>OpenID Provider metadata, as far as a relying party of job tokens needs it.</summary>
public sealed record OpenIdConfiguration(
    string issuer, string jwks_uri, string[] id_token_signing_alg_values_supported, string[] subject_types_supported,
    string[] response_types_supported, string[] claims_supported);

public sealed record JsonWebKeySetDocument(IReadOnlyList<PublicJwk> keys);

public static class IdentityApi
{
    public static IEndpointRouteBuilder MapIdentityApi(this IEndpointRouteBuilder app)
    {
        var wellKnown = app.MapGroup("/.well-known").WithTags("Job identity");
        wellKnown.MapGet("/openid-configuration", Discovery).WithName("OpenIdConfiguration")
            .WithSummary("Discovery document, so Vault or a cloud's workload identity federation can trust job tokens");
        wellKnown.MapGet("/jwks.json", JwksAsync).WithName("Jwks").WithSummary("Public keys that sign job tokens (current and recently rotated)");
        wellKnown.MapGet("/attestation-keys.json", AttestationKeysAsync).WithName("AttestationKeys")
            .WithSummary("Every public key that ever signed, to verify job attestations of any age (never to accept a job token)");

        app.MapGroup("/internal/v1").WithTags("Job identity")
            .AdminListenerOnly()
            .AddEndpointFilter<ProvisionerTokenGate>()
            .MapPost("/job-tokens", MintAsync).WithName("MintJobToken")
            .WithSummary("Mint a job's identity token (provisioner only)")
            .ProducesProblem(StatusCodes.Status401Unauthorized);
        return app;
    }

    public static Ok<OpenIdConfiguration> Discovery(HttpRequest request, IOptions<JobTokenOptions> tokens) =>
        TypedResults.Ok(new OpenIdConfiguration(
            tokens.Value.Issuer,
            $"{request.Scheme}://{request.Host}{request.PathBase}/.well-known/jwks.json",
            ["ES256"], ["public"], ["id_token"],
            ["iss", "aud", "sub", "exp", "iat", "nbf", "jti", JobTokenClaims.JobIdClaim, JobTokenClaims.RepositoryClaim,
             JobTokenClaims.RefClaim, JobTokenClaims.CommitShaClaim, JobTokenClaims.TemplateClaim, JobTokenClaims.EnvironmentClaim, JobTokenClaims.AttemptClaim]));

    public static async Task<Ok<JsonWebKeySetDocument>> JwksAsync(SigningKeyRing ring, HttpResponse response, CancellationToken ct)
    {
        // Short caching: relying parties must see a new key soon after rotation.
        response.Headers.CacheControl = "public, max-age=300";
        return TypedResults.Ok(new JsonWebKeySetDocument(await ring.GetPublishedAsync(ct)));
    }

    public static async Task<Ok<JsonWebKeySetDocument>> AttestationKeysAsync(SigningKeyRing ring, HttpResponse response, CancellationToken ct)
    {
        response.Headers.CacheControl = "public, max-age=300";
        return TypedResults.Ok(new JsonWebKeySetDocument(await ring.GetEverPublishedAsync(ct)));
    }

    public static async Task<Results<Ok<MintedJobToken>, ValidationProblem>> MintAsync(
        JobTokenRequest? request, JobIdentityIssuer issuer, IOptions<SecretsBrokerOptions> options, TimeProvider clock, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (request is null) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["body"] = ["is required"] });
        if (request.JobId == Guid.Empty) errors["jobId"] = ["is required"];
        if (string.IsNullOrWhiteSpace(request.Repository) || request.Repository.Length > 256) errors["repository"] = ["is required (at most 256 characters)"];
        if (string.IsNullOrWhiteSpace(request.Ref) || request.Ref.Length > 256) errors["ref"] = ["is required (at most 256 characters)"];
        if (request.Attempt is < 1 or > JobTokenRequest.MaxAttempt) errors["attempt"] = [$"must be 1 to {JobTokenRequest.MaxAttempt}"];
        var now = clock.GetUtcNow();
        if (request.Deadline <= now) errors["deadline"] = ["must be in the future"];
        else if (request.Deadline - now > options.Value.MaxTokenLifetime) errors["deadline"] = [$"must be within {options.Value.MaxTokenLifetime} from now"];
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);
        return TypedResults.Ok(await issuer.MintAsync(request, "provisioner", ct));
    }
}
