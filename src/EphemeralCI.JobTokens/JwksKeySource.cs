using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace EphemeralCI.JobTokens;

/// <summary>
/// The broker's public keys, read as any relying party reads them: its discovery document
/// (<c>{Authority}/.well-known/openid-configuration</c>) names the JWKS, and IdentityModel's
/// <see cref="ConfigurationManager{T}"/> fetches, caches and refreshes both — every
/// <see cref="JobTokenOptions.JwksRefreshInterval"/> (at least its 5-minute floor), and early when a token
/// names a key id it does not know (the broker rotated), at most every few seconds so a flood of
/// forged kids cannot turn into a flood of requests to the broker. While the broker is away it keeps
/// the keys it had last; before it ever answered there are none, which refuses every token rather
/// than failing the request with a 500.
/// </summary>
public sealed class JwksKeySource : IJobTokenKeySource
{
    public const string HttpClientName = "eci-jobtokens-jwks";
    private static readonly TimeSpan MinRefreshGap = TimeSpan.FromSeconds(5);

    private readonly ConfigurationManager<OpenIdConnectConfiguration> _configuration;

    // Since IdentityModel 8 a refresh runs in the background and the stale keys are returned meanwhile; a
    // token signed by a key the broker just rotated in would be refused once — and a runner agent does not
    // retry a 401. Blocking refresh (IdentityModel's own switch, process-wide: the intake's federation
    // discovery gets it too, which suits it as well).
    static JwksKeySource() => UseBlockingRefresh();

    public static void UseBlockingRefresh() => AppContext.SetSwitch("Switch.Microsoft.IdentityModel.UpdateConfigAsBlocking", true);

    public JwksKeySource(HttpClient http, IOptions<JobTokenOptions> options)
    {
        // In the cluster the broker is reached over its internal plain-HTTP listener (a NetworkPolicy guards it).
        var retriever = new HttpDocumentRetriever(http) { RequireHttps = false };
        _configuration = new ConfigurationManager<OpenIdConnectConfiguration>(DiscoveryUri(options.Value).ToString(), new OpenIdConnectConfigurationRetriever(), retriever)
        {
            AutomaticRefreshInterval = options.Value.JwksRefreshInterval < ConfigurationManager<OpenIdConnectConfiguration>.MinimumAutomaticRefreshInterval
                ? ConfigurationManager<OpenIdConnectConfiguration>.MinimumAutomaticRefreshInterval
                : options.Value.JwksRefreshInterval,
            RefreshInterval = MinRefreshGap,
        };
    }

    public async ValueTask<IReadOnlyList<SecurityKey>> GetKeysAsync(string? kid, CancellationToken cancellationToken = default)
    {
        try
        {
            var configuration = await _configuration.GetConfigurationAsync(cancellationToken);
            if (kid is not null && !configuration.SigningKeys.Any(k => k.KeyId == kid))
            {
                // An unknown key id: the broker may have rotated. The manager refreshes at most every MinRefreshGap.
                _configuration.RequestRefresh();
                configuration = await _configuration.GetConfigurationAsync(cancellationToken);
            }
            return [.. configuration.SigningKeys];
        }
        catch (InvalidOperationException) when (!cancellationToken.IsCancellationRequested)
        {
            // Never fetched yet and the broker does not answer (after a success the manager keeps the last keys itself).
            return [];
        }
    }

    internal static Uri DiscoveryUri(JobTokenOptions o)
    {
        if (string.IsNullOrWhiteSpace(o.Authority))
        {
            throw new InvalidOperationException($"Configuration setting '{JobTokenOptions.Section}:Authority' is missing.");
        }
        return new Uri(new Uri(o.Authority.TrimEnd('/') + "/"), ".well-known/openid-configuration");
    }
}
