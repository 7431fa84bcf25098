using System.Net.Sockets;
using System.Runtime.Versioning;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>
/// The sandbox has no network but loopback, so its one way out is this: Unix sockets in the job's
/// control directory (bound at /run/eci inside) whose connections are relayed byte for byte to the
/// <see cref="ControlPlaneGateway"/> of a control-plane service — the intake (intake.sock) and,
/// when configured, the secrets broker (secrets.sock) and the cache (cache.sock) — which lets only
/// the runner routes of that socket through (<see cref="RelayRoutes"/>). One relay per job, closed at
/// teardown, so a finished job can reach nothing. The sockets serve the agent process only (see
/// <see cref="Start(string, Uri, ILogger, IReadOnlyDictionary{string, Uri}?, bool)"/>).
/// </summary>
[UnsupportedOSPlatform("windows")]
public sealed class ControlPlaneRelay : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly Uri _target;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private readonly HashSet<Socket> _open = [];
    private readonly List<ControlPlaneRelay> _alsoRelayed = [];
    private readonly AgentPin? _pin;

    private ControlPlaneRelay(Socket listener, string socketPath, Uri target, ILogger logger, AgentPin? pin)
    {
        _listener = listener;
        _pin = pin;
        SocketPath = socketPath;
        _target = target;
        _logger = logger;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public string SocketPath { get; }

    /// <summary>
    /// Listens on <paramref name="socketPath"/> and relays to <paramref name="target"/> (http://host:port);
    /// each entry of <paramref name="alsoRelay"/> (socket file name → target) gets a socket of its own
    /// beside it, closed together with this one.
    /// </summary>
    /// <param name="agentOnly">
    /// Only the runner agent may connect (every network mode passes true: a step has no business on
    /// the control plane, and in <c>control-plane</c> and <c>egress</c> it could otherwise ask the
    /// services anything the gateway lets through, without the token but with the job's reach). The agent connects first (to fetch
    /// its job) before any step exists, so the first peer's process id (SO_PEERCRED, which the kernel
    /// fills in and the peer cannot forge) is pinned; connections from any other process — the job's
    /// steps — are closed unanswered, on every socket of the job.
    /// </param>
    public static ControlPlaneRelay Start(string socketPath, Uri target, ILogger logger, IReadOnlyDictionary<string, Uri>? alsoRelay, bool agentOnly = false)
    {
        var pin = agentOnly ? new AgentPin() : null;
        var relay = Start(socketPath, target, logger, pin);
        try
        {
            foreach (var (name, otherTarget) in alsoRelay ?? new Dictionary<string, Uri>())
            {
                relay._alsoRelayed.Add(Start(Path.Combine(Path.GetDirectoryName(socketPath)!, name), otherTarget, logger, pin));
            }
        }
        catch
        {
            _ = relay.DisposeAsync().AsTask();
            throw;
        }
        return relay;
    }

    /// <summary>Listens on <paramref name="socketPath"/> and relays to <paramref name="target"/> (http://host:port).</summary>
    public static ControlPlaneRelay Start(string socketPath, Uri target, ILogger logger) => Start(socketPath, target, logger, pin: null);

    private static ControlPlaneRelay Start(string socketPath, Uri target, ILogger logger, AgentPin? pin)
    {
        // sun_path is 108 bytes including the terminator.
        if (System.Text.Encoding.UTF8.GetByteCount(socketPath) > 107)
        {
            throw new RunnerStartException($"control socket path '{socketPath}' is longer than a Unix socket allows (107 bytes): choose a shorter Provisioner:LocalSandbox:WorkRoot");
        }
        File.Delete(socketPath);
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            // Owner only: inside the sandbox uid 1000 maps to our own uid, so the agent is the owner.
            File.SetUnixFileMode(socketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            listener.Listen(16);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
        return new ControlPlaneRelay(listener, socketPath, target, logger, pin);
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException ex)
            {
                _logger.LogWarning("Control-plane relay accept failed on {Socket}: {Error}", SocketPath, ex.Message);
                continue;
            }
            if (_pin is not null && !_pin.Admit(PeerProcessId(client)))
            {
                _logger.LogWarning("Control-plane relay {Socket} refused a process other than the runner agent", Path.GetFileName(SocketPath));
                client.Dispose();
                continue;
            }
            _ = Task.Run(() => RelayAsync(client));
        }
    }

    private async Task RelayAsync(Socket client)
    {
        var upstream = new Socket(SocketType.Stream, ProtocolType.Tcp);
        Track(client, upstream, add: true);
        Uri? gatewayAddress = null;
        try
        {
            // Started on the first connection of the process, not on a runner's start path.
            gatewayAddress = (await ControlPlaneGateway.ForAsync(Path.GetFileName(SocketPath), _target, _logger)).Address;
            await upstream.ConnectAsync(gatewayAddress.Host, gatewayAddress.Port, _stop.Token);
            using var a = new NetworkStream(client, ownsSocket: false);
            using var b = new NetworkStream(upstream, ownsSocket: false);
            // Each direction half-closes the other when it ends, so HTTP/1.1 sees a normal close.
            await Task.WhenAll(PumpAsync(a, upstream), PumpAsync(b, client));

            async Task PumpAsync(NetworkStream from, Socket to)
            {
                try
                {
                    await from.CopyToAsync(to == upstream ? b : a, _stop.Token);
                    to.Shutdown(SocketShutdown.Send);
                }
                catch (Exception) when (_stop.IsCancellationRequested) { }
                catch (IOException) { }
                catch (SocketException) { }
                catch (ObjectDisposedException) { }
            }
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or IOException or InvalidOperationException)
        {
            if (!_stop.IsCancellationRequested)
            {
                _logger.LogWarning("Control-plane relay {Socket} could not reach the gateway {Gateway} to {Target}: {Error}", Path.GetFileName(SocketPath), gatewayAddress, _target, ex.Message);
            }
        }
        finally
        {
            Track(client, upstream, add: false);
            client.Dispose();
            upstream.Dispose();
        }
    }

    /// <summary>The connecting process (struct ucred from SO_PEERCRED: pid, uid, gid), in our pid namespace; 0 if unknown.</summary>
    private static int PeerProcessId(Socket client)
    {
        const int solSocket = 1, soPeerCred = 17;
        Span<byte> ucred = stackalloc byte[12];
        try
        {
            return client.GetRawSocketOption(solSocket, soPeerCred, ucred) >= 4 ? BitConverter.ToInt32(ucred) : 0;
        }
        catch (SocketException)
        {
            return 0;
        }
    }

    /// <summary>The one process allowed on a job's sockets: the first that connected.</summary>
    private sealed class AgentPin
    {
        private int _pid;

        public bool Admit(int pid)
        {
            if (pid <= 0) return false;
            var pinned = Interlocked.CompareExchange(ref _pid, pid, 0);
            return pinned == 0 || pinned == pid;
        }
    }

    private void Track(Socket client, Socket upstream, bool add)
    {
        lock (_open)
        {
            if (add) { _open.Add(client); _open.Add(upstream); }
            else { _open.Remove(client); _open.Remove(upstream); }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        foreach (var other in _alsoRelayed) await other.DisposeAsync();
        _stop.Cancel();
        _listener.Dispose();
        lock (_open)
        {
            foreach (var s in _open) s.Dispose();
        }
        try { await _acceptLoop; } catch (Exception) { /* closing */ }
        try { File.Delete(SocketPath); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        _stop.Dispose();
    }
}
