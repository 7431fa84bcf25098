using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace EphemeralCI.RunnerAgent.Caching;

/// <summary>
/// The cache as the steps of a job see it: an HTTP endpoint on 127.0.0.1 (a random port, open only while the steps
/// run) that forwards the cache protocols — Actions cache v2 and v1, their signed blob URLs, the <c>/cache/ac</c>
/// <c>/cache/cas</c> build cache — to the cache service with the job's token, so ccache, Bazel, Gradle and
/// <c>@actions/cache</c> work unchanged while the token stays in the agent. Whatever Authorization a step sends (the
/// <see cref="PlaceholderToken"/> from <c>ACTIONS_RUNTIME_TOKEN</c>, Gradle's Basic credentials) is dropped; only the
/// routes in <see cref="StepCacheRoutes"/> leave the runner, only a fixed set of headers goes either way, and the
/// signed URLs in the answers are rewritten to point back here. The scope is the token's: the job's repository and ref
/// (plus the default branch for reads), decided by the cache, never by anything a step sends.
/// </summary>
/// <remarks>
/// <see cref="HttpListener"/>, not Kestrel with YARP: the agent is a native-AOT console program, and a forwarder of a
/// handful of routes that must rewrite two JSON fields is smaller than the ASP.NET Core host it would bring into every
/// runner's start. The sandbox's network namespace (or the pod's) is the job's own, so only the job reaches the port.
/// </remarks>
public sealed class StepCacheEndpoint : IAsyncDisposable
{
    /// <summary>What <c>ACTIONS_RUNTIME_TOKEN</c> holds in a step: the toolkit insists on a token; this one opens nothing.</summary>
    public const string PlaceholderToken = "eci-step-cache-endpoint-adds-the-job-token";

    private const int BufferSize = 128 * 1024;

    private static readonly string[] RequestHeaders = ["Content-Type", "Content-Range", "Range", "Accept", "If-Match", "If-None-Match"];
    private static readonly string[] ResponseHeaders = ["Content-Range", "Accept-Ranges", "Repr-Digest", "ETag", "Last-Modified", "Retry-After"];

    private readonly HttpClient _cache;
    private readonly string _token;
    private readonly HttpListener _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _accepting;
    private readonly HashSet<Task> _inFlight = [];
    private readonly Lock _gate = new();
    private bool _disposed;

    private StepCacheEndpoint(HttpClient cache, string token, HttpListener listener, int port)
    {
        _cache = cache;
        _token = token;
        _listener = listener;
        Port = port;
        BaseUrl = $"http://127.0.0.1:{port}";
        _accepting = AcceptAsync();
    }

    public int Port { get; }

    /// <summary><c>http://127.0.0.1:{port}</c>, without a trailing slash.</summary>
    public string BaseUrl { get; }

    /// <summary>The build-cache root: Bazel's <c>--remote_cache</c>, ccache's <c>remote_storage</c> with <c>layout=bazel</c>.</summary>
    public string BuildCacheUrl => BaseUrl + StepCacheRoutes.BuildCacheRoot;

    /// <summary>The variables every step gets while the endpoint runs (the toolkit, setup-node/python caching, build tools).</summary>
    public IReadOnlyDictionary<string, string> StepVariables => new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["ECI_CACHE_URL"] = BuildCacheUrl,
        ["ACTIONS_CACHE_URL"] = BaseUrl + "/",
        ["ACTIONS_RESULTS_URL"] = BaseUrl + "/",
        ["ACTIONS_RUNTIME_TOKEN"] = PlaceholderToken,
        ["ACTIONS_CACHE_SERVICE_V2"] = "true",
    };

    /// <summary>Listens on a free loopback port; <paramref name="cache"/> reaches the cache service (socket relay or URL).</summary>
    public static StepCacheEndpoint Start(HttpClient cache, string token)
    {
        // HttpListener cannot bind port 0: take a port the kernel says is free, retrying if another process wins the race.
        for (var attempt = 1; ; attempt++)
        {
            int port;
            using (var probe = new TcpListener(IPAddress.Loopback, 0))
            {
                probe.Start();
                port = ((IPEndPoint)probe.LocalEndpoint).Port;
                probe.Stop();
            }
            var listener = new HttpListener { IgnoreWriteExceptions = true };
            listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            try
            {
                listener.Start();
                return new StepCacheEndpoint(cache, token, listener, port);
            }
            catch (HttpListenerException) when (attempt < 5)
            {
                listener.Close();
            }
        }
    }

    private async Task AcceptAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return; // stopped
            }
            var handling = HandleAsync(context);
            lock (_gate) _inFlight.Add(handling);
            _ = handling.ContinueWith(t => { lock (_gate) _inFlight.Remove(t); }, TaskScheduler.Default);
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        var request = context.Request;
        var response = context.Response;
        try
        {
            // The path as sent, not Url.AbsolutePath (which is already decoded and normalised): "/cache/ac/../admin" stays refused.
            var raw = request.RawUrl ?? "/";
            var queryAt = raw.IndexOf('?');
            var path = queryAt < 0 ? raw : raw[..queryAt];
            if (!path.StartsWith('/') || StepCacheRoutes.Match(request.HttpMethod, path) is not { } kind)
            {
                await ProblemAsync(response, HttpStatusCode.NotFound, "Not Found",
                    $"This endpoint forwards only the cache routes (Actions cache v1/v2, {StepCacheRoutes.BuildCacheRoot}/ac, {StepCacheRoutes.BuildCacheRoot}/cas); {request.HttpMethod} {path} is not one of them.");
                return;
            }
            await ForwardAsync(request, response, raw.TrimStart('/'), kind, _stopping.Token);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException or HttpListenerException)
        {
            if (!TryProblem(response, HttpStatusCode.BadGateway, "Bad Gateway", "The cache service could not be reached from this runner; the build goes on without it."))
            {
                response.Abort(); // a body was under way: a short body the client rejects, never a truncated entry it keeps
                return;
            }
        }
        finally
        {
            try { response.Close(); } catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException or IOException) { }
        }
    }

    private async Task ForwardAsync(HttpListenerRequest request, HttpListenerResponse response, string relative, StepCacheRouteKind kind, CancellationToken ct)
    {
        using var outbound = new HttpRequestMessage(new HttpMethod(request.HttpMethod), relative);
        if (request.HasEntityBody)
        {
            var content = new StreamContent(request.InputStream, BufferSize);
            if (request.ContentLength64 >= 0) content.Headers.ContentLength = request.ContentLength64;
            outbound.Content = content;
        }
        foreach (var name in RequestHeaders)
        {
            if (request.Headers[name] is not { } value) continue;
            if (outbound.Content is not null && outbound.Content.Headers.TryAddWithoutValidation(name, value)) continue;
            outbound.Headers.TryAddWithoutValidation(name, value);
        }
        foreach (var name in request.Headers.AllKeys)
        {
            // The Azure SDK's block-blob headers (x-ms-blob-type, x-ms-version, …) go to the signed blob URLs.
            if (name is not null && name.StartsWith("x-ms-", StringComparison.OrdinalIgnoreCase)) outbound.Headers.TryAddWithoutValidation(name, request.Headers[name]);
        }
        // Never what a step sent: the placeholder, Gradle's Basic credentials and anything else are dropped here.
        if (kind != StepCacheRouteKind.SignedBlob) outbound.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);

        using var answer = await _cache.SendAsync(outbound, HttpCompletionOption.ResponseHeadersRead, ct);
        response.StatusCode = (int)answer.StatusCode;
        foreach (var name in ResponseHeaders)
        {
            if (answer.Headers.TryGetValues(name, out var values) || answer.Content.Headers.TryGetValues(name, out values)) response.AddHeader(name, string.Join(", ", values));
        }
        foreach (var (name, values) in answer.Headers)
        {
            if (name.StartsWith("x-ms-", StringComparison.OrdinalIgnoreCase)) response.AddHeader(name, string.Join(", ", values));
        }
        if (answer.Content.Headers.ContentType is { } type) response.ContentType = type.ToString();

        if (kind == StepCacheRouteKind.ActionsApi && answer.Content.Headers.ContentType?.MediaType == "application/json")
        {
            var body = Encoding.UTF8.GetBytes(RewriteSignedUrls(await answer.Content.ReadAsStringAsync(ct)));
            response.ContentLength64 = body.Length;
            await response.OutputStream.WriteAsync(body, ct);
            return;
        }
        if (answer.Content.Headers.ContentLength is { } length) response.ContentLength64 = length;
        else if (request.HttpMethod != "HEAD") response.SendChunked = true;
        if (request.HttpMethod == "HEAD") return;
        await using var stream = await answer.Content.ReadAsStreamAsync(ct);
        await stream.CopyToAsync(response.OutputStream, BufferSize, ct);
    }

    /// <summary>
    /// The signed URLs the cache hands out name the cache as it saw itself, which no step can reach: they are pointed
    /// back at this endpoint (path and query kept, so the signature still holds). A presigned object-store URL is
    /// dropped: steps reach the cache only through here, and the toolkit ignores the field anyway.
    /// </summary>
    public string RewriteSignedUrls(string json)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (System.Text.Json.JsonException)
        {
            return json;
        }
        if (node is not JsonObject body) return json;
        foreach (var field in (string[])["signed_upload_url", "signed_download_url", "archiveLocation"])
        {
            if (body[field] is JsonValue value && value.TryGetValue<string>(out var url) && Uri.TryCreate(url, UriKind.Absolute, out var uri))
            {
                body[field] = BaseUrl + uri.PathAndQuery;
            }
        }
        body.Remove("direct_download_url");
        return body.ToJsonString();
    }

    private static async Task ProblemAsync(HttpListenerResponse response, HttpStatusCode status, string title, string detail)
    {
        var body = Problem(status, title, detail);
        response.StatusCode = (int)status;
        response.ContentType = "application/problem+json";
        response.ContentLength64 = body.Length;
        await response.OutputStream.WriteAsync(body);
    }

    /// <summary>A problem answer, if the status line has not gone out yet.</summary>
    private static bool TryProblem(HttpListenerResponse response, HttpStatusCode status, string title, string detail)
    {
        try
        {
            var body = Problem(status, title, detail);
            response.StatusCode = (int)status;
            response.ContentType = "application/problem+json";
            response.ContentLength64 = body.Length;
            response.OutputStream.Write(body);
            return true;
        }
        catch (Exception e) when (e is InvalidOperationException or HttpListenerException or ObjectDisposedException or IOException)
        {
            return false;
        }
    }

    private static byte[] Problem(HttpStatusCode status, string title, string detail) => Encoding.UTF8.GetBytes(new JsonObject
    {
        ["type"] = "about:blank",
        ["title"] = title,
        ["status"] = (int)status,
        ["detail"] = detail,
    }.ToJsonString());

    /// <summary>Stops listening: steps are over, so nothing in the runner may use the job's cache credentials any more.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        _stopping.Cancel();
        _listener.Close();
        await _accepting;
        Task[] left;
        lock (_gate) left = [.. _inFlight];
        await Task.WhenAll(left).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
        _stopping.Dispose();
    }
}
