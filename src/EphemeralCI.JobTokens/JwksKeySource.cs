using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace EphemeralCI.JobTokens;

/// <summary>
/// The broker's public keys, fetched from <c>{Authority}/.well-known/jwks.json</c> and cached. A token
/// whose <c>kid</c> is unknown triggers one early refresh (the broker rotated), at most every few seconds
/// so a flood of forged kids cannot turn into a flood of requests to the broker.
/// </summary>
public sealed class JwksKeySource(HttpClient http, IOptions<JobTokenOptions> options, TimeProvider clock) : IJobTokenKeySource
{
    public const string HttpClientName = "eci-jobtokens-jwks";
    private static readonly TimeSpan MinRefreshGap = TimeSpan.FromSeconds(5);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private IReadOnlyList<SecurityKey> _keys = [];
    private DateTimeOffset _fetchedAt = DateTimeOffset.MinValue;

    public async ValueTask<IReadOnlyList<SecurityKey>> GetKeysAsync(string? kid, CancellationToken cancellationToken = default)
    {
        var now = clock.GetUtcNow();
        var stale = now - _fetchedAt > options.Value.JwksRefreshInterval;
        var unknownKid = kid is not null && !_keys.Any(k => k.KeyId == kid) && now - _fetchedAt > MinRefreshGap;
        if (!stale && !unknownKid) return _keys;

        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_fetchedAt > now) return _keys; // another caller refreshed meanwhile
            var json = await http.GetStringAsync(JwksUri(options.Value), cancellationToken);
            _keys = [.. new JsonWebKeySet(json).GetSigningKeys()];
            _fetchedAt = clock.GetUtcNow();
            return _keys;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or ArgumentException && !cancellationToken.IsCancellationRequested)
        {
            // The broker is briefly away: keep trusting what it published last (nothing, at first,
            // which refuses every token rather than failing the request with a 500).
            return _keys;
        }
        finally
        {
            _gate.Release();
        }
    }

    internal static Uri JwksUri(JobTokenOptions o)
    {
        if (string.IsNullOrWhiteSpace(o.Authority))
        {
            throw new InvalidOperationException($"Configuration setting '{JobTokenOptions.Section}:Authority' is missing.");
        }
        return new Uri(new Uri(o.Authority.TrimEnd('/') + "/"), ".well-known/jwks.json");
    }
}
