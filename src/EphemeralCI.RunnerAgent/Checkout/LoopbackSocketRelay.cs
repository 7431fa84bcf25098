using System.Net;
using System.Net.Sockets;

namespace EphemeralCI.RunnerAgent.Checkout;

/// <summary>
/// A loopback TCP port, inside the sandbox, whose connections this process relays to the cache's Unix socket. The
/// provisioner's relay admits only the agent's own process on that socket, so git (a child process) reaches the
/// mirror through the agent. It lives only while the checkout runs, before any step exists, and is closed after.
/// </summary>
internal sealed class LoopbackSocketRelay : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly string _socketPath;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private readonly List<Socket> _open = [];

    private LoopbackSocketRelay(string socketPath)
    {
        _socketPath = socketPath;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Address = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _accepting = AcceptAsync();
    }

    /// <summary>http://127.0.0.1:port/ of the relay.</summary>
    public Uri Address { get; }

    public static LoopbackSocketRelay Start(string socketPath) => new(socketPath);

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }
            _ = Task.Run(() => RelayAsync(client));
        }
    }

    private async Task RelayAsync(Socket client)
    {
        var upstream = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        lock (_open) { _open.Add(client); _open.Add(upstream); }
        try
        {
            await upstream.ConnectAsync(new UnixDomainSocketEndPoint(_socketPath), _stop.Token);
            using var a = new NetworkStream(client, ownsSocket: false);
            using var b = new NetworkStream(upstream, ownsSocket: false);
            await Task.WhenAll(PumpAsync(a, b, upstream), PumpAsync(b, a, client));
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or ObjectDisposedException) { }
        finally
        {
            lock (_open) { _open.Remove(client); _open.Remove(upstream); }
            client.Dispose();
            upstream.Dispose();
        }

        async Task PumpAsync(NetworkStream from, NetworkStream to, Socket toSocket)
        {
            try
            {
                await from.CopyToAsync(to, _stop.Token);
                toSocket.Shutdown(SocketShutdown.Send);
            }
            catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or ObjectDisposedException) { }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        _listener.Stop();
        lock (_open)
        {
            foreach (var s in _open) s.Dispose();
        }
        try { await _accepting; } catch (Exception) { /* closing */ }
        _stop.Dispose();
    }
}
