using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;

namespace EphemeralCI.AppHost;

/// <summary>
/// The <c>Checkout</c> section (git mirrors, commit verification, checkout) is read by two services: the cache keeps
/// the mirrors and the provisioner verifies before a runner starts. Both get the AppHost's own section, so an operator
/// sets it once (<c>Checkout:Enabled=true</c>, <c>Checkout:UrlTemplate</c>, <c>Checkout:TokenSecret=ECI_…</c> naming
/// an operator-only secret in the broker; a plain <c>Checkout:Token</c> is best given as a user secret of the AppHost).
/// </summary>
internal static class CheckoutConfiguration
{
    public static IResourceBuilder<ProjectResource> WithCheckout(this IResourceBuilder<ProjectResource> service, IConfiguration configuration)
    {
        foreach (var (key, value) in configuration.GetSection("Checkout").AsEnumerable())
        {
            if (value is null) continue;
            service.WithEnvironment(key.Replace(":", "__", StringComparison.Ordinal), value);
        }
        return service;
    }
}
