using Microsoft.Extensions.Hosting;
using System.Text;
using EphemeralCI.SecretsBroker.Crypto;
using EphemeralCI.SecretsBroker.Identity;
using EphemeralCI.SecretsBroker.Infrastructure;
using EphemeralCI.SecretsBroker.Policies;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace EphemeralCI.SecretsBroker.Apis;

/// <summary>Body of <c>PUT /api/v1/admin/secrets/{name}</c>. The value is write-only: no answer ever contains it.</summary>
public sealed record PutSecretRequest(string? Value, IReadOnlyList<string>? Repositories, IReadOnlyList<string>? Refs, string? Environment);

public sealed record SecretVersionInfo(int Version, DateTimeOffset CreatedAt, string CreatedBy, string KeyId);

/// <summary>Everything about a secret except its value.</summary>
public sealed record SecretMetadata(
    string Name, int CurrentVersion, IReadOnlyList<string> Repositories, IReadOnlyList<string> Refs, string? Environment,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, string UpdatedBy, IReadOnlyList<SecretVersionInfo>? Versions = null);

public sealed record RewrapResult(string ActiveKeyId, int SecretVersions, int SigningKeys);

public static class AdminApi
{
    public static RouteGroupBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1/admin")
            .WithTags("Secrets administration")
            .AdminListenerOnly()
            .AddEndpointFilter<AdminTokenGate>()
            .ProducesProblem(StatusCodes.Status401Unauthorized);

        api.MapGet("/secrets", ListAsync).WithName("ListSecrets").WithSummary("Names, versions and policies of all secrets (never values)");
        api.MapGet("/secrets/{name}", GetAsync).WithName("GetSecret").WithSummary("Metadata and version history of one secret (never its value)");
        api.MapPut("/secrets/{name}", PutAsync).WithName("PutSecret")
            .WithSummary("Create a secret, add a version (when a value is given) or change its policy");
        api.MapDelete("/secrets/{name}", DeleteAsync).WithName("DeleteSecret").WithSummary("Delete a secret and every sealed version of it");
        api.MapPost("/keys/rewrap", RewrapAsync).WithName("RewrapKeys")
            .WithSummary("Re-wrap every data key under the active key-encryption key, so an old key can be retired");
        api.MapPost("/signing-keys/rotate", RotateSigningKeyAsync).WithName("RotateSigningKey")
            .WithSummary("A new key signs job tokens and attestations from now on; the old one stays published for the overlap, its private half destroyed");
        return api;
    }

    public static async Task<Ok<List<SecretMetadata>>> ListAsync(SecretsDbContext db, CancellationToken ct)
    {
        var secrets = await db.Secrets.AsNoTracking().OrderBy(s => s.Name).ToListAsync(ct);
        return TypedResults.Ok(secrets.Select(s => ToMetadata(s)).ToList());
    }

    public static async Task<Results<Ok<SecretMetadata>, ProblemHttpResult>> GetAsync(string name, SecretsDbContext db, CancellationToken ct)
    {
        var secret = await db.Secrets.AsNoTracking().Include(s => s.Versions).FirstOrDefaultAsync(s => s.Name == name, ct);
        return secret is null ? NotFound(name) : TypedResults.Ok(ToMetadata(secret, withVersions: true));
    }

    public static async Task<Results<Created<SecretMetadata>, Ok<SecretMetadata>, ValidationProblem, ProblemHttpResult>> PutAsync(
        string name, PutSecretRequest? request, SecretStore store, SecretsDbContext db, IOptions<SecretsBrokerOptions> options, CancellationToken ct)
    {
        var errors = Validate(name, request, options.Value.MaxSecretBytes);
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);
        if (request!.Value is null && !await db.Secrets.AnyAsync(s => s.Name == name, ct))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["value"] = ["is required when creating a secret"] });
        }
        var environment = string.IsNullOrWhiteSpace(request.Environment) ? null : request.Environment;
        var (secret, created) = await store.PutAsync(name, new SecretWrite(request.Value, request.Repositories!, request.Refs!, environment), AdminTokenGate.Actor, ct);
        var metadata = ToMetadata(secret);
        return created ? TypedResults.Created($"/api/v1/admin/secrets/{name}", metadata) : TypedResults.Ok(metadata);
    }

    public static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(string name, SecretStore store, CancellationToken ct) =>
        await store.DeleteAsync(name, AdminTokenGate.Actor, ct) ? TypedResults.NoContent() : NotFound(name);

    public static async Task<Ok<SigningKeyRotation>> RotateSigningKeyAsync(SigningKeyRing ring, CancellationToken ct) =>
        TypedResults.Ok(await ring.RotateNowAsync(AdminTokenGate.Actor, ct));

    public static async Task<Ok<RewrapResult>> RewrapAsync(SecretStore store, KeyRing keys, CancellationToken ct)
    {
        var (versions, signingKeys) = await store.RewrapAsync(keys.ActiveKeyId, AdminTokenGate.Actor, ct);
        return TypedResults.Ok(new RewrapResult(keys.ActiveKeyId, versions, signingKeys));
    }

    internal static Dictionary<string, string[]> Validate(string name, PutSecretRequest? request, int maxBytes)
    {
        var errors = new Dictionary<string, string[]>();
        if (!SecretNames.IsValid(name)) errors["name"] = ["must start with a letter or '_' and contain only letters, digits and '_' (at most 128): it becomes an environment variable"];
        if (request is null)
        {
            errors["body"] = ["is required: { value, repositories, refs, environment }"];
            return errors;
        }
        if (request.Value is { } v)
        {
            if (v.Length == 0) errors["value"] = ["must not be empty"];
            else if (Encoding.UTF8.GetByteCount(v) > maxBytes) errors["value"] = [$"must be at most {maxBytes} bytes"];
        }
        AddPatternErrors(errors, "repositories", request.Repositories);
        AddPatternErrors(errors, "refs", request.Refs);
        if (request.Environment is { Length: > 128 }) errors["environment"] = ["must be at most 128 characters"];
        return errors;
    }

    private static void AddPatternErrors(Dictionary<string, string[]> errors, string field, IReadOnlyList<string>? patterns)
    {
        if (patterns is null || patterns.Count == 0)
        {
            errors[field] = ["must list at least one pattern (a secret no job may receive is useless; '**' admits all, deliberately)"];
            return;
        }
        var problems = patterns.Select((p, i) => SecretPolicy.ValidatePattern(p) is { } why ? $"[{i}] {why}" : null).OfType<string>().ToArray();
        if (problems.Length > 0) errors[field] = problems;
    }

    private static SecretMetadata ToMetadata(Secret s, bool withVersions = false) => new(
        s.Name, s.CurrentVersion, s.RepositoryPatterns, s.RefPatterns, s.Environment, s.CreatedAt, s.UpdatedAt, s.UpdatedBy,
        withVersions ? s.Versions.OrderBy(v => v.Version).Select(v => new SecretVersionInfo(v.Version, v.CreatedAt, v.CreatedBy, v.KeyId)).ToList() : null);

    private static ProblemHttpResult NotFound(string name) =>
        TypedResults.Problem($"No secret named '{name}'.", statusCode: StatusCodes.Status404NotFound, title: "Not found");
}
