using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using EphemeralCI.Attestations;
using EphemeralCI.Contracts.Jobs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Intake.Attestations;

/// <summary>
/// What the dependency cache itself served to a job attempt, for the attestation: read in process when the cache
/// runs in this process (the all-in-one server), else from its admin listener (<c>Attestations:CacheUrl</c> +
/// <c>CacheToken</c>). Null when neither is there: the attestation then lists what the runner reported, marked as such.
/// Throws <see cref="AttestationSigningException"/> when the cache cannot answer, so the sweep attests later
/// rather than from the runner's word.
/// </summary>
public sealed class CacheUseSource(IServiceProvider services, IHttpClientFactory http, IOptions<AttestationOptions> options)
{
    public const string HttpClientName = "eci-attestation-cache";
    public const string Path = "internal/v1/cache-uses";

    public bool Configured => services.GetService<ICacheUseLog>() is not null || !string.IsNullOrWhiteSpace(options.Value.CacheUrl);

    public async Task<IReadOnlyList<CacheUseRecord>?> ForAttemptAsync(Guid jobId, int attempt, CancellationToken ct)
    {
        if (services.GetService<ICacheUseLog>() is { } inProcess) return await inProcess.ForAttemptAsync(jobId, attempt, ct);
        var o = options.Value;
        if (string.IsNullOrWhiteSpace(o.CacheUrl)) return null;
        if (string.IsNullOrWhiteSpace(o.CacheToken))
        {
            throw new AttestationSigningException($"{AttestationOptions.Section}:CacheUrl is set but {AttestationOptions.Section}:CacheToken is not");
        }
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(o.CacheUrl.TrimEnd('/') + "/"), $"{Path}?jobId={jobId}&attempt={attempt}"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", o.CacheToken);
        try
        {
            using var response = await http.CreateClient(HttpClientName).SendAsync(request, ct);
            if (!response.IsSuccessStatusCode)
            {
                throw new AttestationSigningException($"the cache refused to say what it served: HTTP {(int)response.StatusCode}");
            }
            return await response.Content.ReadFromJsonAsync<List<CacheUseRecord>>(JsonSerializerOptions.Web, ct)
                ?? throw new AttestationSigningException("the cache answered with an empty body");
        }
        catch (Exception ex) when (ex is HttpRequestException or JsonException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            throw new AttestationSigningException($"the cache could not be asked what it served: {ex.Message}", ex);
        }
    }
}
