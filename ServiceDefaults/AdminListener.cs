using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Operator routes (secrets administration, audit, job-token minting, cache administration) on their own
/// listener: with <c>AdminListener:Port</c> set, they answer only on connections to that local port,
/// and the network (NetworkPolicies) keeps runners off it. The connection's real local port decides,
/// never the Host header a client writes. Unset (the AppHost, the all-in-one server, whose relays
/// already refuse these routes), they answer on every listener as before.
/// </summary>
public static class AdminListener
{
    public const string PortKey = "AdminListener:Port";

    /// <summary>Adds the port check before any other filter of the group (so a token is not even looked at on the wrong port).</summary>
    public static TBuilder AdminListenerOnly<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilter(async (context, next) =>
        {
            var http = context.HttpContext;
            var port = http.RequestServices.GetRequiredService<IConfiguration>().GetValue<int?>(PortKey);
            if (port is { } admin && http.Connection.LocalPort != admin)
            {
                return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Not found",
                    detail: "Administration routes are served on the administration listener only.");
            }
            return await next(context);
        });
}
