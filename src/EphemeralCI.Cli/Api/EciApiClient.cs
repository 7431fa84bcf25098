using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace EphemeralCI.Cli.Api;

/// <summary>
/// The intake's public API (/api/v1/jobs, /api/v1/api-keys) as the CLI uses it. Every failure
/// becomes an <see cref="EciApiException"/> (the server said no) or a <see cref="CliException"/>
/// (the server could not be reached, or is not an EphemeralCI intake), never a raw HTTP exception.
/// </summary>
public sealed partial class EciApiClient : IDisposable
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private static readonly TimeSpan[] RetryDelays = [TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(2)];

    private readonly HttpClient _http;

    public EciApiClient(Uri server, string? apiKey, HttpMessageHandler? handler, ApiTarget? target = null)
    {
        Server = server;
        Target = target ?? ApiTarget.Intake;
        // The follow stream stays open for as long as the job runs; requests get their own deadlines instead.
        _http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        _http.BaseAddress = server;
        _http.Timeout = Timeout.InfiniteTimeSpan;
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("eci", Hosting.EciApp.Version));
        if (apiKey is not null) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    public Uri Server { get; }

    /// <summary>Which service this client talks to (names it in every error).</summary>
    public ApiTarget Target { get; }

    /// <summary>How long one ordinary request may take (not the log stream).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public Task<ApiResult<JobAccepted>> SubmitJobAsync(string specJson, string idempotencyKey, CancellationToken ct) =>
        SendAsync<JobAccepted>(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/jobs")
            {
                Content = new StringContent(specJson, System.Text.Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("Idempotency-Key", idempotencyKey);
            return request;
        }, retry: true, ct);

    public Task<ApiResult<JobPage>> ListJobsAsync(string? status, string? repository, int? page, int? pageSize, string? cursor, CancellationToken ct)
    {
        var query = new List<string>();
        if (!string.IsNullOrEmpty(status)) query.Add("status=" + Uri.EscapeDataString(status));
        if (!string.IsNullOrEmpty(repository)) query.Add("repository=" + Uri.EscapeDataString(repository));
        if (page is { } p) query.Add("page=" + p);
        if (pageSize is { } s) query.Add("pageSize=" + s);
        if (!string.IsNullOrEmpty(cursor)) query.Add("cursor=" + Uri.EscapeDataString(cursor));
        var path = "api/v1/jobs" + (query.Count > 0 ? "?" + string.Join('&', query) : "");
        return GetAsync<JobPage>(path, ct);
    }

    public Task<ApiResult<JobSummary>> GetJobAsync(Guid id, CancellationToken ct) => GetAsync<JobSummary>($"api/v1/jobs/{id}", ct);

    /// <summary>The job's signed attestation (a DSSE envelope).</summary>
    public Task<ApiResult<EphemeralCI.Attestations.DsseEnvelope>> GetAttestationAsync(Guid id, CancellationToken ct) =>
        GetAsync<EphemeralCI.Attestations.DsseEnvelope>($"api/v1/jobs/{id}/attestation", ct);

    /// <summary>A JSON Web Key Set, public (no credential): the secrets broker's <c>.well-known/jwks.json</c>, or another URL.</summary>
    public Task<ApiResult<EphemeralCI.Attestations.JsonWebKeySet>> GetJwksAsync(string path, CancellationToken ct) =>
        GetAsync<EphemeralCI.Attestations.JsonWebKeySet>(path, ct);

    public Task<ApiResult<JobTimeline>> GetEventsAsync(Guid id, CancellationToken ct) => GetAsync<JobTimeline>($"api/v1/jobs/{id}/events", ct);

    // Not retried: a cancel that reached the server before the connection broke would answer 409 the second time.
    public Task<ApiResult<JobSummary>> CancelJobAsync(Guid id, CancellationToken ct) =>
        SendAsync<JobSummary>(() => new HttpRequestMessage(HttpMethod.Post, $"api/v1/jobs/{id}/cancel"), retry: false, ct);

    public async Task<string> GetLogTextAsync(Guid id, CancellationToken ct)
    {
        using var response = await SendRawAsync(() => new HttpRequestMessage(HttpMethod.Get, $"api/v1/jobs/{id}/logs"), retry: true, HttpCompletionOption.ResponseContentRead, ct);
        return await response.Content.ReadAsStringAsync(ct);
    }

    /// <summary>Opens the live log (server-sent events), resuming after <paramref name="lastEventId"/> when reconnecting.</summary>
    public async Task<HttpResponseMessage> OpenLogStreamAsync(Guid id, string? lastEventId, CancellationToken ct)
    {
        var response = await SendRawAsync(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, $"api/v1/jobs/{id}/logs?follow=true");
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
            if (lastEventId is not null) request.Headers.Add("Last-Event-ID", lastEventId);
            return request;
        }, retry: true, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.Content.Headers.ContentType?.MediaType != "text/event-stream")
        {
            response.Dispose();
            throw NotAnIntake($"GET api/v1/jobs/{id}/logs?follow=true", "it did not answer with an event stream");
        }
        return response;
    }

    public Task<ApiResult<CreatedApiKey>> CreateKeyAsync(CreateApiKeyRequest key, CancellationToken ct) =>
        SendAsync<CreatedApiKey>(() => new HttpRequestMessage(HttpMethod.Post, "api/v1/api-keys")
        {
            Content = JsonContent.Create(key, options: Json),
        }, retry: false, ct);

    public Task<ApiResult<List<ApiKeySummary>>> ListKeysAsync(CancellationToken ct) => GetAsync<List<ApiKeySummary>>("api/v1/api-keys", ct);

    public async Task RevokeKeyAsync(Guid id, CancellationToken ct)
    {
        // Revoking twice is not an error on the server, so a retry is safe.
        using var _ = await SendRawAsync(() => new HttpRequestMessage(HttpMethod.Delete, $"api/v1/api-keys/{id}"), retry: true, HttpCompletionOption.ResponseContentRead, ct);
    }

    private Task<ApiResult<T>> GetAsync<T>(string path, CancellationToken ct) =>
        SendAsync<T>(() => new HttpRequestMessage(HttpMethod.Get, path), retry: true, ct);

    private async Task<ApiResult<T>> SendAsync<T>(Func<HttpRequestMessage> build, bool retry, CancellationToken ct)
    {
        using var response = await SendRawAsync(build, retry, HttpCompletionOption.ResponseContentRead, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        var what = $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri?.PathAndQuery}";
        if (response.Content.Headers.ContentType?.MediaType is not ("application/json" or "application/problem+json"))
        {
            throw NotAnIntake(what, $"it answered {(int)response.StatusCode} with {response.Content.Headers.ContentType?.MediaType ?? "no content type"}");
        }
        try
        {
            var value = JsonSerializer.Deserialize<T>(body, Json) ?? throw new JsonException("null");
            return new ApiResult<T>(value, body);
        }
        catch (JsonException)
        {
            throw NotAnIntake(what, "its JSON answer has an unexpected shape (is the CLI much older or newer than the server?)");
        }
    }

    private async Task<HttpResponseMessage> SendRawAsync(Func<HttpRequestMessage> build, bool retry, HttpCompletionOption completion, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            using var request = build();
            var what = $"{request.Method} /{request.RequestUri}";
            HttpResponseMessage response;
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            deadline.CancelAfter(RequestTimeout);
            try
            {
                response = await _http.SendAsync(request, completion, deadline.Token);
            }
            catch (HttpRequestException ex) when (retry && attempt < RetryDelays.Length)
            {
                _ = ex;
                await Task.Delay(RetryDelays[attempt], ct);
                continue;
            }
            catch (HttpRequestException ex)
            {
                throw new CliException(
                    $"Cannot reach the {Target.ServiceName} at {Server}: {ex.Message}",
                    ExitCodes.Unreachable,
                    [$"Check the address with `eci config show` ({Target.ServerVariable} overrides the config file) and that the {Target.ServiceName} is running."]);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                if (retry && attempt < RetryDelays.Length) continue;
                throw new CliException($"The {Target.ServiceName} at {Server} did not answer {what} within {RequestTimeout.TotalSeconds:0} seconds.", ExitCodes.Unreachable);
            }

            if (response.IsSuccessStatusCode) return response;
            var status = (int)response.StatusCode;
            if (retry && attempt < RetryDelays.Length && response.StatusCode is HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout)
            {
                response.Dispose();
                await Task.Delay(RetryDelays[attempt], ct);
                continue;
            }
            var body = await response.Content.ReadAsStringAsync(ct);
            var method = request.Method.Method;
            var path = "/" + request.RequestUri;
            response.Dispose();
            throw new EciApiException(Problem.Parse(status, body), method, path, Target);
        }
    }

    private CliException NotAnIntake(string what, string why) => new(
        $"The server at {Server} does not look like {Target.Kind}: for {what} {why}.",
        ExitCodes.Unreachable,
        [$"Check the address with `eci config show`; it should be the {Target.ServiceName}'s base URL (the one that serves {Target.ProbePath})."]);

    public void Dispose() => _http.Dispose();
}
