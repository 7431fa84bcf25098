using System.Buffers.Text;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using EphemeralCI.Contracts.Runner;
using Polly;
using Polly.Retry;

namespace EphemeralCI.RunnerAgent;

/// <summary>
/// The runner API of the intake, over the Unix socket the provisioner relays (or a URL). Every call
/// is retried through transient failures — the intake restarting or down, a relay hiccup — with
/// back-off until the job's deadline (its token's expiry: after it the provisioner kills the runner
/// and the intake would refuse the token anyway), so a control-plane outage shorter than the job's
/// time fails no job. Each call is safe to repeat: logs go by byte offset, events and the completion
/// are recorded once by the intake. What is not retried: a refusal (4xx other than 408/429: bad or
/// expired token), and a relay that is gone — its socket refuses connections only once the provisioner
/// that owns this runner has died, and then the agent exits (the sandbox should already be gone with it).
/// </summary>
public sealed class IntakeClient : IDisposable
{
    /// <summary>Exit code when the provisioner's relay is gone: nothing can be reported any more.</summary>
    public const int RelayClosedExitCode = 4;
    /// <summary>How long a job without a readable deadline keeps retrying (the longest a job may run).</summary>
    private static readonly TimeSpan DefaultRetryBound = TimeSpan.FromHours(6);
    private static readonly TimeSpan RelayProbeInterval = TimeSpan.FromSeconds(1);

    private readonly HttpClient _http;
    private readonly ResiliencePipeline _retry;
    private readonly DateTimeOffset _deadline;
    private readonly string? _relaySocket;
    private Timer? _relayWatch;
    private readonly HttpMessageInvoker _webSockets;

    public IntakeClient(HttpClient http, string token, string? relaySocket = null)
    {
        // A WebSocket needs a handler of its own (an HttpClient would buffer the upgraded stream): same way to the intake.
        _webSockets = new HttpMessageInvoker(relaySocket is null ? new SocketsHttpHandler() : UnixSocketHttp.CreateHandler(relaySocket));
        _http = http;
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        // Made here, kept in this process's memory only: the first fetch binds it to the job, so
        // reports must come from this agent, not merely from whoever holds the token.
        _http.DefaultRequestHeaders.Add(RunnerApiHeaders.AgentKey, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
        _http.Timeout = TimeSpan.FromSeconds(30);
        _relaySocket = relaySocket;
        _deadline = DeadlineOf(token) ?? DateTimeOffset.UtcNow + DefaultRetryBound;
        _retry = new ResiliencePipelineBuilder().AddRetry(RetryOptions()).Build();
    }

    public static IntakeClient FromEnvironment(string token)
    {
        var socket = Environment.GetEnvironmentVariable(RunnerEnvironment.IntakeSocket);
        if (!string.IsNullOrEmpty(socket))
        {
            var client = new IntakeClient(UnixSocketHttp.Create(socket, new Uri("http://intake/")), token, socket);
            client.ExitWhenRelayCloses();
            return client;
        }
        var url = Environment.GetEnvironmentVariable(RunnerEnvironment.IntakeUrl);
        if (string.IsNullOrEmpty(url))
        {
            throw new InvalidOperationException($"neither {RunnerEnvironment.IntakeSocket} nor {RunnerEnvironment.IntakeUrl} is set");
        }
        return new IntakeClient(new HttpClient { BaseAddress = new Uri(url) }, token);
    }

    /// <summary>Exponential back-off with jitter from 100 ms, at most 5 s apart, no attempt limit: the deadline bounds it.</summary>
    private RetryStrategyOptions RetryOptions() => new()
    {
        ShouldHandle = args => ValueTask.FromResult(!args.Context.CancellationToken.IsCancellationRequested && ShouldRetry(args.Outcome)),
        BackoffType = DelayBackoffType.Exponential,
        UseJitter = true,
        Delay = TimeSpan.FromMilliseconds(100),
        MaxDelay = TimeSpan.FromSeconds(5),
        MaxRetryAttempts = int.MaxValue,
    };

    /// <summary>Raised once the job is fetched, before anything else runs: the other clients join its trace.</summary>
    public event Action<RunnerJob>? JobFetched;

    public async Task<RunnerJob> GetJobAsync(CancellationToken ct)
    {
        var job = await RetryAsync(async c =>
        {
            using var response = await _http.GetAsync(RunnerApiRoutes.Job, c);
            await EnsureSuccessAsync(response, c);
            return (await response.Content.ReadFromJsonAsync(AgentJson.Default.RunnerJob, c))
                ?? throw new InvalidDataException("empty job");
        }, ct);
        // Every later report joins the job's trace (set before any other call is made: nothing else runs yet).
        AgentTrace.Join(_http, job.TraceParent);
        JobFetched?.Invoke(job);
        return job;
    }

    public Task PostEventAsync(RunnerStepEvent evt, CancellationToken ct) => RetryAsync(async c =>
    {
        using var response = await _http.PostAsJsonAsync(RunnerApiRoutes.Events, evt, AgentJson.Default.RunnerStepEvent, c);
        await EnsureSuccessAsync(response, c);
        return true;
    }, ct);

    public Task PostCacheEventAsync(RunnerCacheEvent evt, CancellationToken ct) => RetryAsync(async c =>
    {
        using var response = await _http.PostAsJsonAsync(RunnerApiRoutes.CacheEvents, evt, AgentJson.Default.RunnerCacheEvent, c);
        await EnsureSuccessAsync(response, c);
        return true;
    }, ct);

    /// <summary>Posts one chunk at its byte offset; the intake ignores a chunk it already has, so retrying is safe.</summary>
    public Task PostLogAsync(long offset, ReadOnlyMemory<byte> chunk, CancellationToken ct) => RetryAsync(async c =>
    {
        using var content = new ReadOnlyMemoryContent(chunk);
        content.Headers.ContentType = new MediaTypeHeaderValue("text/plain") { CharSet = "utf-8" };
        using var response = await _http.PostAsync($"{RunnerApiRoutes.Logs}?offset={offset}", content, c);
        await EnsureSuccessAsync(response, c);
        return true;
    }, ct);

    /// <summary>A session's commands from <paramref name="from"/> on, waiting up to <paramref name="wait"/> for one to come.</summary>
    public Task<RunnerCommands> GetCommandsAsync(int from, TimeSpan wait, CancellationToken ct) => RetryAsync(async c =>
    {
        var seconds = (int)Math.Clamp(Math.Ceiling(wait.TotalSeconds), 0, 25);
        using var response = await _http.GetAsync($"{RunnerApiRoutes.Commands}?from={from}&waitSeconds={seconds}", c);
        await EnsureSuccessAsync(response, c);
        return (await response.Content.ReadFromJsonAsync(AgentJson.Default.RunnerCommands, c)) ?? throw new InvalidDataException("empty commands");
    }, ct);

    /// <summary>
    /// An interactive session's terminal (<see cref="RunnerApiRoutes.Terminal"/>), with the job token and agent key like every call,
    /// retried like them while the intake is unreachable.
    /// </summary>
    public Task<System.Net.WebSockets.WebSocket> ConnectTerminalAsync(CancellationToken ct) => RetryAsync<System.Net.WebSockets.WebSocket>(async c =>
    {
        var socket = new System.Net.WebSockets.ClientWebSocket();
        foreach (var header in _http.DefaultRequestHeaders) socket.Options.SetRequestHeader(header.Key, string.Join(",", header.Value));
        socket.Options.KeepAliveInterval = TimeSpan.FromSeconds(20);
        var uri = new UriBuilder(new Uri(_http.BaseAddress!, RunnerApiRoutes.Terminal));
        uri.Scheme = uri.Scheme == Uri.UriSchemeHttps ? "wss" : "ws";
        try
        {
            using var connect = CancellationTokenSource.CreateLinkedTokenSource(c);
            connect.CancelAfter(_http.Timeout);
            await socket.ConnectAsync(uri.Uri, _webSockets, connect.Token);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }, ct);

    public Task CompleteAsync(RunnerCompletion completion, CancellationToken ct) => RetryAsync(async c =>
    {
        using var response = await _http.PostAsJsonAsync(RunnerApiRoutes.Complete, completion, AgentJson.Default.RunnerCompletion, c);
        await EnsureSuccessAsync(response, c);
        return true;
    }, ct);

    /// <summary>
    /// As <see cref="HttpResponseMessage.EnsureSuccessStatusCode"/>, except that a 409 saying the job is over (a deleted session, a
    /// cancelled or timed-out job) is a <see cref="JobEndedException"/>: the end of this runner's work, not a failure to report.
    /// A lost attempt's 409 stays a refusal.
    /// </summary>
    private static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.StatusCode == HttpStatusCode.Conflict && response.Content.Headers.ContentType?.MediaType == "application/problem+json")
        {
            var body = await response.Content.ReadAsByteArrayAsync(ct);
            try
            {
                using var problem = JsonDocument.Parse(body);
                if (problem.RootElement.ValueKind == JsonValueKind.Object
                    && problem.RootElement.TryGetProperty(RunnerConflicts.Extension, out var conflict) && conflict.ValueEquals(RunnerConflicts.JobEnded))
                {
                    var status = problem.RootElement.TryGetProperty(RunnerConflicts.JobStatusExtension, out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
                    throw new JobEndedException(status ?? "over");
                }
            }
            catch (JsonException) { /* not a problem we know: a plain refusal */ }
        }
        response.EnsureSuccessStatusCode();
    }

    private async Task<T> RetryAsync<T>(Func<CancellationToken, Task<T>> action, CancellationToken ct)
    {
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var left = _deadline - DateTimeOffset.UtcNow;
        bounded.CancelAfter(left > TimeSpan.Zero ? left : TimeSpan.Zero);
        try
        {
            return await _retry.ExecuteAsync(static async (state, c) => await state(c), action, bounded.Token);
        }
        catch (OperationCanceledException) when (bounded.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            throw new TimeoutException($"the intake did not answer before the job's deadline ({_deadline:O})");
        }
    }

    /// <summary>Transient: the intake (or the way to it) is down or overloaded, or a call timed out. Not: a refusal, a relay that is gone.</summary>
    private bool ShouldRetry(Outcome<object> outcome) => outcome.Exception switch
    {
        HttpRequestException ex when _relaySocket is not null && IsRelayClosed(ex) => false,
        HttpRequestException ex => ex.StatusCode is null or >= HttpStatusCode.InternalServerError or HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests,
        // A terminal that could not connect: retried when the way to the intake failed, not when the intake refused (409: the session ended).
        System.Net.WebSockets.WebSocketException { InnerException: HttpRequestException or IOException } ex =>
            ShouldRetry(Outcome.FromException<object>(ex.InnerException!)),
        // HttpClient's own timeout (the caller's token is checked in ShouldHandle).
        TaskCanceledException => true,
        IOException => true,
        _ => false,
    };

    private static bool IsRelayClosed(Exception ex) =>
        ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.AddressNotAvailable }
        || ex.InnerException?.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.AddressNotAvailable };

    /// <summary>
    /// Probes the relay's socket every second, also while a step is quiet: once it refuses connections the
    /// provisioner that owns this runner is gone, nothing this job does can be reported, and the agent
    /// exits — with it its sandbox's pid namespace, and every step still running in it.
    /// </summary>
    private void ExitWhenRelayCloses()
    {
        _relayWatch = new Timer(_ =>
        {
            if (!RelayRefuses(_relaySocket!)) return;
            Console.Error.WriteLine("runner-agent: the provisioner's relay is gone; exiting");
            Environment.Exit(RelayClosedExitCode);
        }, null, RelayProbeInterval, RelayProbeInterval);
    }

    internal static bool RelayRefuses(string socketPath)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(socketPath));
            return false;
        }
        catch (SocketException ex)
        {
            return ex.SocketErrorCode is SocketError.ConnectionRefused or SocketError.AddressNotAvailable;
        }
    }

    /// <summary>The token's <c>exp</c> (a JWT: header.payload.signature), read without checking it: the intake checks it.</summary>
    internal static DateTimeOffset? DeadlineOf(string token)
    {
        var parts = token.Split('.');
        if (parts.Length != 3) return null;
        try
        {
            var payload = Base64Url.DecodeFromChars(parts[1]);
            using var doc = JsonDocument.Parse(payload);
            return doc.RootElement.TryGetProperty("exp", out var exp) && exp.TryGetInt64(out var seconds)
                ? DateTimeOffset.FromUnixTimeSeconds(seconds)
                : null;
        }
        catch (Exception ex) when (ex is FormatException or JsonException)
        {
            return null;
        }
    }

    public void Dispose()
    {
        _relayWatch?.Dispose();
        _webSockets.Dispose();
        _http.Dispose();
    }
}

/// <summary>The intake says the job is over without this runner (its session deleted, the job cancelled or timed out): nothing is left to report.</summary>
public sealed class JobEndedException(string status) : Exception($"the job is {status}: the intake takes no more reports from this runner")
{
    public string Status { get; } = status;
}
