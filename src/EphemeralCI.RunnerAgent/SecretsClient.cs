using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using EphemeralCI.Contracts.Runner;
using Polly;
using Polly.Retry;

namespace EphemeralCI.RunnerAgent;

/// <summary>What the broker handed over: values by name, and names it refused with a short reason.</summary>
public sealed record SecretsGrant(IReadOnlyDictionary<string, string> Secrets, IReadOnlyDictionary<string, string> Denied)
{
    public static readonly SecretsGrant None = new(new Dictionary<string, string>(), new Dictionary<string, string>());
}

/// <summary>
/// Exchanges the job token for the job's secrets at the secrets broker, over the Unix socket the
/// provisioner relays (or a URL). The exchange is single-use, so a request that may have reached the
/// broker is never repeated; only a connection that could not be opened is retried.
/// </summary>
public sealed class SecretsClient(HttpClient http, string token) : IDisposable
{
    public const string ExchangePath = "api/v1/secrets/exchange";

    /// <summary>Null when the sandbox has no way to the broker (neither variable set).</summary>
    public static SecretsClient? FromEnvironment(string token)
    {
        var socket = Environment.GetEnvironmentVariable(RunnerEnvironment.SecretsSocket);
        if (!string.IsNullOrEmpty(socket))
        {
            return new SecretsClient(UnixSocketHttp.Create(socket, new Uri("http://secrets-broker/")), token);
        }
        var url = Environment.GetEnvironmentVariable(RunnerEnvironment.SecretsUrl);
        return string.IsNullOrEmpty(url) ? null : new SecretsClient(new HttpClient { BaseAddress = new Uri(url) }, token);
    }

    // Could not connect: the request never left, so trying again cannot be a replay (any other failure is not retried).
    private static readonly ResiliencePipeline ConnectRetry = new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
    {
        ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is HttpRequestException { InnerException: SocketException } && !args.Context.CancellationToken.IsCancellationRequested),
        MaxRetryAttempts = 5,
        BackoffType = DelayBackoffType.Exponential,
        UseJitter = true,
        Delay = TimeSpan.FromMilliseconds(200),
    }).Build();

    /// <summary>The exchange joins the job's trace (see <see cref="AgentTrace"/>).</summary>
    public void JoinTrace(string? traceParent) => AgentTrace.Join(http, traceParent);

    public async Task<SecretsGrant> ExchangeAsync(IReadOnlyList<string> names, CancellationToken ct) => await ConnectRetry.ExecuteAsync(async c =>
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, ExchangePath)
        {
            Content = JsonContent.Create(new SecretsExchangeRequest(names), AgentJson.Default.SecretsExchangeRequest),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request, c);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"the secrets broker refused the exchange: HTTP {(int)response.StatusCode}");
        }
        var body = await response.Content.ReadFromJsonAsync(AgentJson.Default.SecretsExchangeResponse, c)
            ?? throw new InvalidOperationException("the secrets broker sent an empty answer");
        return new SecretsGrant(body.Secrets ?? [], body.Denied ?? []);
    }, ct);

    public void Dispose() => http.Dispose();
}
