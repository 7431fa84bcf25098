using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using EphemeralCI.Contracts.Runner;

namespace EphemeralCI.RunnerAgent;

/// <summary>The runner API of the intake, over the Unix socket the provisioner relays (or a URL).</summary>
public sealed class IntakeClient : IDisposable
{
    private readonly HttpClient _http;

    public IntakeClient(HttpClient http, string token)
    {
        _http = http;
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        // Made here, kept in this process's memory only: the first fetch binds it to the job, so
        // reports must come from this agent, not merely from whoever holds the token.
        _http.DefaultRequestHeaders.Add(RunnerApiHeaders.AgentKey, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
        _http.Timeout = TimeSpan.FromSeconds(30);
    }

    public static IntakeClient FromEnvironment(string token)
    {
        var socket = Environment.GetEnvironmentVariable(RunnerEnvironment.IntakeSocket);
        if (!string.IsNullOrEmpty(socket))
        {
            return new IntakeClient(UnixSocketHttp.Create(socket, new Uri("http://intake/")), token);
        }
        var url = Environment.GetEnvironmentVariable(RunnerEnvironment.IntakeUrl);
        if (string.IsNullOrEmpty(url))
        {
            throw new InvalidOperationException($"neither {RunnerEnvironment.IntakeSocket} nor {RunnerEnvironment.IntakeUrl} is set");
        }
        return new IntakeClient(new HttpClient { BaseAddress = new Uri(url) }, token);
    }

    public Task<RunnerJob> GetJobAsync(CancellationToken ct) => RetryAsync(async () =>
    {
        using var response = await _http.GetAsync(RunnerApiRoutes.Job, ct);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync(AgentJson.Default.RunnerJob, ct))
            ?? throw new InvalidDataException("empty job");
    }, ct);

    public Task PostEventAsync(RunnerStepEvent evt, CancellationToken ct) => RetryAsync(async () =>
    {
        using var response = await _http.PostAsJsonAsync(RunnerApiRoutes.Events, evt, AgentJson.Default.RunnerStepEvent, ct);
        response.EnsureSuccessStatusCode();
        return true;
    }, ct);

    public Task PostCacheEventAsync(RunnerCacheEvent evt, CancellationToken ct) => RetryAsync(async () =>
    {
        using var response = await _http.PostAsJsonAsync(RunnerApiRoutes.CacheEvents, evt, AgentJson.Default.RunnerCacheEvent, ct);
        response.EnsureSuccessStatusCode();
        return true;
    }, ct);

    /// <summary>Posts one chunk at its byte offset; the intake ignores a chunk it already has, so retrying is safe.</summary>
    public Task PostLogAsync(long offset, ReadOnlyMemory<byte> chunk, CancellationToken ct) => RetryAsync(async () =>
    {
        using var content = new ReadOnlyMemoryContent(chunk);
        content.Headers.ContentType = new MediaTypeHeaderValue("text/plain") { CharSet = "utf-8" };
        using var response = await _http.PostAsync($"{RunnerApiRoutes.Logs}?offset={offset}", content, ct);
        response.EnsureSuccessStatusCode();
        return true;
    }, ct);

    public Task CompleteAsync(RunnerCompletion completion, CancellationToken ct) => RetryAsync(async () =>
    {
        using var response = await _http.PostAsJsonAsync(RunnerApiRoutes.Complete, completion, AgentJson.Default.RunnerCompletion, ct);
        response.EnsureSuccessStatusCode();
        return true;
    }, ct);

    // Transient failures (intake restarting, relay hiccup) are retried with backoff; 4xx other than
    // 408/429 mean the intake refuses us (bad or expired token) and retrying cannot help.
    private static async Task<T> RetryAsync<T>(Func<Task<T>> action, CancellationToken ct)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await action();
            }
            catch (HttpRequestException ex) when (attempt < 8 && IsTransient(ex) && !ct.IsCancellationRequested)
            {
            }
            catch (TaskCanceledException) when (attempt < 8 && !ct.IsCancellationRequested)
            {
                // HttpClient timeout
            }
            await Task.Delay(delay, ct);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
        }
    }

    private static bool IsTransient(HttpRequestException ex) =>
        ex.StatusCode is null or >= System.Net.HttpStatusCode.InternalServerError
            or System.Net.HttpStatusCode.RequestTimeout or System.Net.HttpStatusCode.TooManyRequests;

    public void Dispose() => _http.Dispose();
}
