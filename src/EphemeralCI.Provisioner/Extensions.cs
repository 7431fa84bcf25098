using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;

namespace EphemeralCI.Provisioner;

public static class ProvisionerExtensions
{
    /// <summary>Everything the Provisioner module needs, in one place.</summary>
    public static IHostApplicationBuilder AddProvisioner(this IHostApplicationBuilder builder)
    {
        return builder;
    }

    public static IEndpointRouteBuilder MapProvisioner(this IEndpointRouteBuilder app)
    {
        return app;
    }
}
