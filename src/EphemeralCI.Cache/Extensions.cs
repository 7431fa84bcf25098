using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;

namespace EphemeralCI.Cache;

public static class CacheExtensions
{
    /// <summary>Everything the Cache module needs, in one place.</summary>
    public static IHostApplicationBuilder AddCache(this IHostApplicationBuilder builder)
    {
        return builder;
    }

    public static IEndpointRouteBuilder MapCache(this IEndpointRouteBuilder app)
    {
        return app;
    }
}
