using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;

namespace EphemeralCI.SecretsBroker;

public static class SecretsBrokerExtensions
{
    /// <summary>Everything the SecretsBroker module needs, in one place.</summary>
    public static IHostApplicationBuilder AddSecretsBroker(this IHostApplicationBuilder builder)
    {
        return builder;
    }

    public static IEndpointRouteBuilder MapSecretsBroker(this IEndpointRouteBuilder app)
    {
        return app;
    }
}
