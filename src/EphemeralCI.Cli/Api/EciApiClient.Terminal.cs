using System.Net.WebSockets;

namespace EphemeralCI.Cli.Api;

public sealed partial class EciApiClient
{
    /// <summary>An interactive session on a fresh runner made from job <paramref name="jobId"/>'s spec (POST /api/v1/jobs/{id}/shell).</summary>
    public Task<ApiResult<SessionSummary>> OpenShellForJobAsync(Guid jobId, int? idleTimeoutSeconds, string idempotencyKey, CancellationToken ct) =>
        SendAsync<SessionSummary>(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, $"api/v1/jobs/{jobId}/shell")
            {
                Content = System.Net.Http.Json.JsonContent.Create(new { idleTimeoutSeconds }, options: Json),
            };
            request.Headers.Add("Idempotency-Key", idempotencyKey);
            return request;
        }, retry: true, ct);

    /// <summary>
    /// The terminal of an interactive session (a WebSocket, <c>/api/v1/sessions/{id}/terminal</c>) with this client's credential.
    /// A refusal (404, 409) becomes a <see cref="CliException"/> naming the status.
    /// </summary>
    public async Task<WebSocket> ConnectTerminalAsync(Guid id, int cols, int rows, CancellationToken ct)
    {
        var socket = new ClientWebSocket();
        if (_http.DefaultRequestHeaders.Authorization is { } auth) socket.Options.SetRequestHeader("Authorization", auth.ToString());
        socket.Options.KeepAliveInterval = TimeSpan.FromSeconds(20);
        socket.Options.CollectHttpResponseDetails = true;
        var uri = new UriBuilder(new Uri(Server, $"api/v1/sessions/{id}/terminal?cols={cols}&rows={rows}"));
        uri.Scheme = uri.Scheme == Uri.UriSchemeHttps ? "wss" : "ws";
        try
        {
            using var connect = CancellationTokenSource.CreateLinkedTokenSource(ct);
            connect.CancelAfter(RequestTimeout);
            await socket.ConnectAsync(uri.Uri, connect.Token);
            return socket;
        }
        catch (WebSocketException ex)
        {
            var status = (int)socket.HttpStatusCode;
            socket.Dispose();
            throw new CliException(status switch
            {
                404 => $"There is no session {id} that this credential may attach to.",
                409 => $"Session {id} has ended or is not interactive: its terminal cannot be opened.",
                0 => $"The server at {Server} could not be reached for the terminal: {ex.Message}",
                _ => $"The server at {Server} refused the terminal (HTTP {status}).",
            }, status switch { 404 => ExitCodes.NotFound, 409 => ExitCodes.Error, 0 => ExitCodes.Unreachable, _ => ExitCodes.Error });
        }
    }
}
