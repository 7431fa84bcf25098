using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.Extensions.Options;

namespace EphemeralCI.JobTokens;

/// <summary>The interim issuer: HS256 with the shared <c>JobTokens:SigningKey</c> (all-in-one and old set-ups).</summary>
public sealed class SharedKeyJobTokenIssuer(JobTokenService tokens) : IJobTokenIssuer
{
    public Task<string> IssueAsync(JobTokenRequest request, CancellationToken cancellationToken = default) =>
        Task.FromResult(tokens.Issue(request.JobId, request.Repository, request.Ref, request.Deadline, request.Attempt));
}

/// <summary>
/// Asks the secrets broker to mint the job's token (<c>POST {Authority}/internal/v1/job-tokens</c>),
/// authenticated by the provisioner's credential. The broker signs with its rotating ES256 keys.
/// </summary>
public sealed class BrokerJobTokenIssuer(HttpClient http, IOptions<JobTokenOptions> options) : IJobTokenIssuer
{
    public const string HttpClientName = "eci-jobtokens-broker";
    public const string MintPath = "internal/v1/job-tokens";

    public async Task<string> IssueAsync(JobTokenRequest request, CancellationToken cancellationToken = default)
    {
        var o = options.Value;
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri(o.Authority!.TrimEnd('/') + "/"), MintPath))
        {
            Content = JsonContent.Create(request),
        };
        message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", o.ProvisionerToken);
        using var response = await http.SendAsync(message, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            // InvalidOperationException: the scheduler fails the runner's start with this reason.
            throw new InvalidOperationException($"The secrets broker refused to mint a job token: HTTP {(int)response.StatusCode}.");
        }
        var minted = await response.Content.ReadFromJsonAsync<MintedJobToken>(cancellationToken)
            ?? throw new InvalidOperationException("The secrets broker answered the mint request with an empty body.");
        return minted.Token;
    }
}

/// <summary>The broker's answer to a mint request.</summary>
public sealed record MintedJobToken(string Token, string KeyId, DateTimeOffset ExpiresAt);
