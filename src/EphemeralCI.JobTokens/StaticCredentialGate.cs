using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace EphemeralCI.JobTokens;

/// <summary>
/// A static bearer credential from configuration (an admin token, the provisioner's token), kept only
/// as its SHA-256 hash and compared in constant time. An empty setting disables the endpoints it
/// guards (every request gets 401 naming the setting). Shared by the secrets broker and the cache.
/// A host may configure the hash instead (hex), so the credential itself is never stored.
/// </summary>
public abstract class StaticCredentialGate(string configured, string settingName, string? configuredSha256Hex = null) : IEndpointFilter
{
    private readonly byte[]? _hash = !string.IsNullOrEmpty(configured) ? SHA256.HashData(Encoding.UTF8.GetBytes(configured))
        : !string.IsNullOrWhiteSpace(configuredSha256Hex) ? Convert.FromHexString(configuredSha256Hex.Trim())
        : null;

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var presented = JobTokenAuthenticationHandler.BearerToken(http.Request.Headers.Authorization.ToString());
        if (_hash is null)
        {
            return Unauthorized(http, $"This endpoint is disabled: '{settingName}' is not configured.");
        }
        if (presented is null || !CryptographicOperations.FixedTimeEquals(_hash, SHA256.HashData(Encoding.UTF8.GetBytes(presented))))
        {
            return Unauthorized(http, "A valid credential is required: send it as 'Authorization: Bearer <token>'.");
        }
        return await next(context);
    }

    private static IResult Unauthorized(HttpContext http, string detail)
    {
        http.Response.Headers.WWWAuthenticate = "Bearer";
        return TypedResults.Problem(detail, statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized");
    }
}
