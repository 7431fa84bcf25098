using EphemeralCI.Intake.Auth;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Model;
using EphemeralCI.JobTokens;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Intake.Apis;

/// <summary>Admin API for the keys CI systems use. A key is shown once, when it is created.</summary>
public static class ApiKeysApi
{
    public const int MaxNameLength = 100;
    public const int MaxGlobs = 50;
    /// <summary>The default ref binding: every ref (<c>*</c> alone would stop at the first '/').</summary>
    public const string AnyRef = "**";

    public static RouteGroupBuilder MapApiKeysApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1/api-keys").WithTags("API keys").RequireScope(ApiKeyScopes.Admin)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden);

        api.MapPost("/", CreateKey)
            .WithName("CreateApiKey")
            .WithSummary("Create an API key")
            .Accepts<CreateApiKeyRequest>("application/json")
            .WithDescription("The answer holds the key itself; it is not stored and cannot be shown again.");

        api.MapGet("/", ListKeys)
            .WithName("ListApiKeys")
            .WithSummary("List API keys (never the keys themselves)");

        api.MapDelete("/{id:guid}", RevokeKey)
            .WithName("RevokeApiKey")
            .WithSummary("Revoke an API key")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        return api;
    }

    public static async Task<Results<Created<CreatedApiKey>, ValidationProblem, ProblemHttpResult>> CreateKey(
        HttpRequest request, IntakeDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var body = await RequestBody.ReadJsonAsync<CreateApiKeyRequest>(request, 64 * 1024, ct);
        if (body.Problem is { } problem) return problem;
        var input = body.Value!;

        var errors = new Dictionary<string, string[]>();
        var name = input.Name?.Trim();
        if (string.IsNullOrEmpty(name)) errors["name"] = ["is required"];
        else if (name.Length > MaxNameLength || name.Any(char.IsControl)) errors["name"] = [$"must be at most {MaxNameLength} characters, without control characters"];
        if (input.Scopes is null || input.Scopes.Count == 0) errors["scopes"] = [$"must list at least one of: {string.Join(", ", ApiKeyScopes.All)}"];
        else
        {
            for (var i = 0; i < input.Scopes.Count; i++)
            {
                if (input.Scopes[i] is not { } scope || !ApiKeyScopes.IsKnown(scope))
                {
                    errors[$"scopes[{i}]"] = [$"must be one of: {string.Join(", ", ApiKeyScopes.All)}"];
                }
            }
        }
        var isAdmin = input.Scopes?.Contains(ApiKeyScopes.Admin) == true;
        // Admin keys see everything; every other key is bound to what it may claim, with no implicit "all".
        if (!isAdmin && (input.Repositories is null || input.Repositories.Count == 0))
        {
            errors["repositories"] = ["must list at least one repository glob (e.g. 'acme/widgets', 'acme/*') for a key without the admin scope"];
        }
        ValidateGlobs("repositories", input.Repositories, errors);
        ValidateGlobs("refs", input.Refs, errors);
        ValidateGlobs("templates", input.Templates, errors);
        ValidateGlobs("environments", input.Environments, errors);
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);

        var secret = ApiKeySecret.Generate();
        var key = new ApiKey
        {
            Id = Guid.CreateVersion7(),
            Name = name!,
            Prefix = ApiKeySecret.PrefixOf(secret),
            Hash = ApiKeySecret.Hash(secret),
            Scopes = input.Scopes!.Distinct(StringComparer.Ordinal).ToList(),
            Repositories = Distinct(input.Repositories),
            Refs = input.Refs is { Count: > 0 } ? Distinct(input.Refs) : [AnyRef],
            Templates = Distinct(input.Templates),
            Environments = Distinct(input.Environments),
            CreatedAt = clock.GetUtcNow(),
        };
        db.ApiKeys.Add(key);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/api/v1/api-keys/{key.Id}",
            new CreatedApiKey(key.Id, key.Name, key.Prefix, key.Scopes, key.CreatedAt, secret, key.Repositories, key.Refs, key.Templates, key.Environments));
    }

    private static void ValidateGlobs(string field, IReadOnlyList<string>? patterns, Dictionary<string, string[]> errors)
    {
        if (patterns is null) return;
        if (patterns.Count > MaxGlobs) { errors[field] = [$"must list at most {MaxGlobs} globs"]; return; }
        for (var i = 0; i < patterns.Count; i++)
        {
            if (IdentityGlob.Validate(patterns[i]) is { } why) errors[$"{field}[{i}]"] = [why];
        }
    }

    private static List<string> Distinct(IReadOnlyList<string>? values) => values?.Distinct(StringComparer.Ordinal).ToList() ?? [];

    public static async Task<Ok<List<ApiKeySummary>>> ListKeys(IntakeDbContext db, CancellationToken ct)
    {
        var keys = await db.ApiKeys.AsNoTracking().OrderBy(k => k.CreatedAt).ToListAsync(ct);
        return TypedResults.Ok(keys.Select(ApiKeySummary.From).ToList());
    }

    public static async Task<Results<NoContent, ProblemHttpResult>> RevokeKey(
        Guid id, IntakeDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var key = await db.ApiKeys.FirstOrDefaultAsync(k => k.Id == id, ct);
        if (key is null)
        {
            return Problems.NotFound("API key not found", $"There is no API key {id}.");
        }
        if (key.RevokedAt is not null) return TypedResults.NoContent(); // revoking twice is not an error

        // Never lock everyone out: the last working admin key stays.
        if (key.Scopes.Contains(ApiKeyScopes.Admin)
            && !await db.ApiKeys.AnyAsync(k => k.Id != id && k.RevokedAt == null && k.Scopes.Contains(ApiKeyScopes.Admin), ct))
        {
            return Problems.Conflict("Last admin key", "This is the only admin key that is not revoked; create another admin key first.");
        }
        key.RevokedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(ct);
        return TypedResults.NoContent();
    }
}
