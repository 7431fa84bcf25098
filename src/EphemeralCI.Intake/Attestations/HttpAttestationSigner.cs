using System.Net.Http.Headers;
using System.Net.Http.Json;
using EphemeralCI.Attestations;
using EphemeralCI.JobTokens;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Intake.Attestations;

/// <summary>Asks the secrets broker to sign (<c>POST {SignerUrl}/internal/v1/attestations</c>), with the intake's credential.</summary>
public sealed class HttpAttestationSigner(HttpClient http, IOptions<AttestationOptions> options, IOptions<JobTokenOptions> tokens) : IAttestationSigner
{
    public const string HttpClientName = "eci-attestation-signer";
    public const string SignPath = "internal/v1/attestations";

    public async Task<DsseEnvelope> SignAsync(AttestationRequest request, CancellationToken ct)
    {
        var o = options.Value;
        var baseUrl = o.SignerUrl ?? tokens.Value.Authority;
        if (string.IsNullOrWhiteSpace(baseUrl) || string.IsNullOrWhiteSpace(o.SignerToken))
        {
            throw new AttestationSigningException($"no signer: set {AttestationOptions.Section}:SignerToken (and {AttestationOptions.Section}:SignerUrl or {JobTokenOptions.Section}:Authority)");
        }
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri(baseUrl.TrimEnd('/') + "/"), SignPath))
        {
            Content = JsonContent.Create(new { jobId = request.JobId, statement = request.Statement }, options: AttestationFormat.Json),
        };
        message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", o.SignerToken);
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(message, ct);
        }
        catch (HttpRequestException ex)
        {
            throw new AttestationSigningException($"the secrets broker could not be reached: {ex.Message}", ex);
        }
        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                var body = await response.Content.ReadAsStringAsync(ct);
                throw new AttestationSigningException($"the secrets broker refused to sign: HTTP {(int)response.StatusCode} {body[..Math.Min(body.Length, 500)]}");
            }
            return await response.Content.ReadFromJsonAsync<DsseEnvelope>(AttestationFormat.Json, ct)
                ?? throw new AttestationSigningException("the secrets broker answered with an empty body");
        }
    }
}
