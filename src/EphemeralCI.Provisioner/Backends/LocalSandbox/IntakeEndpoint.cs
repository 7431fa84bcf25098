using Microsoft.Extensions.Configuration;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>Where the control-plane relay forwards to: Aspire's service discovery entry for the intake, else <c>Provisioner:IntakeUrl</c>.</summary>
public sealed class IntakeEndpoint(IConfiguration configuration)
{
    public const string ServiceDiscoveryKey = "services:intake:http:0";
    public const string IntakeUrlKey = "Provisioner:IntakeUrl";

    public Uri Resolve()
    {
        var value = configuration[ServiceDiscoveryKey];
        if (string.IsNullOrWhiteSpace(value)) value = configuration[IntakeUrlKey];
        if (string.IsNullOrWhiteSpace(value))
        {
            throw new RunnerStartException($"no intake endpoint configured: set '{IntakeUrlKey}' (or reference the intake from the AppHost, which sets '{ServiceDiscoveryKey}')");
        }
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
        {
            throw new RunnerStartException($"intake endpoint '{value}' must be an absolute http:// URL (the relay forwards plain TCP)");
        }
        return uri;
    }

    public const string SecretsBrokerDiscoveryKey = "services:secrets-broker:http:0";
    public const string SecretsBrokerUrlKey = "Provisioner:SecretsBrokerUrl";

    /// <summary>
    /// Where the sandbox's secrets.sock relays to, or null when no broker is configured (jobs that ask
    /// for secrets then fail with a clear message from the agent).
    /// </summary>
    public Uri? ResolveSecretsBroker() => ResolveOptional(SecretsBrokerDiscoveryKey, SecretsBrokerUrlKey, "secrets broker");

    public const string CacheDiscoveryKey = "services:cache:http:0";
    public const string CacheUrlKey = "Provisioner:CacheUrl";

    /// <summary>Where the sandbox's cache.sock relays to, or null when no cache is configured (the agent then skips caches).</summary>
    public Uri? ResolveCache() => ResolveOptional(CacheDiscoveryKey, CacheUrlKey, "cache");

    private Uri? ResolveOptional(string discoveryKey, string urlKey, string service)
    {
        var value = configuration[discoveryKey];
        if (string.IsNullOrWhiteSpace(value)) value = configuration[urlKey];
        if (string.IsNullOrWhiteSpace(value)) return null;
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
        {
            throw new RunnerStartException($"{service} endpoint '{value}' must be an absolute http:// URL (the relay forwards plain TCP)");
        }
        return uri;
    }
}
