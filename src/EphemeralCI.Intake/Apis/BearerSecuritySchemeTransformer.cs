using EphemeralCI.Intake.Auth;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace EphemeralCI.Intake.Apis;

/// <summary>
/// Documents the intake's bearer authentication in the OpenAPI document: API keys for the public
/// API, job tokens for the runner API.
/// </summary>
public sealed class BearerSecuritySchemeTransformer : IOpenApiDocumentTransformer, IOpenApiOperationTransformer
{
    public const string ApiKeySchemeId = "ApiKey";
    public const string JobTokenSchemeId = "JobToken";

    public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[ApiKeySchemeId] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "eci_<base64url>",
            Description = "An API key: 'Authorization: Bearer eci_…'. Scopes: submit, read, admin (admin implies the others).",
        };
        document.Components.SecuritySchemes[JobTokenSchemeId] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "JWT",
            Description = "The short-lived job token a runner is born with (runner API only).",
        };
        return Task.CompletedTask;
    }

    public Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var metadata = context.Description.ActionDescriptor.EndpointMetadata;
        var scope = metadata.OfType<RequiredScope>().LastOrDefault();
        var isRunner = context.Description.RelativePath?.StartsWith("api/v1/runner", StringComparison.Ordinal) == true;
        if (scope is null && !isRunner) return Task.CompletedTask;

        var schemeId = isRunner ? JobTokenSchemeId : ApiKeySchemeId;
        operation.Security ??= [];
        operation.Security.Add(new OpenApiSecurityRequirement
        {
            [new OpenApiSecuritySchemeReference(schemeId, context.Document)] = scope is null ? [] : [scope.Scope],
        });
        return Task.CompletedTask;
    }
}
