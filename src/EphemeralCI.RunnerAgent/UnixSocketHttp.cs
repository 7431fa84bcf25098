using System.Net.Sockets;

namespace EphemeralCI.RunnerAgent;

/// <summary>HTTP over a Unix socket the provisioner binds into the sandbox and relays to a service.</summary>
internal static class UnixSocketHttp
{
    public static HttpClient Create(string socketPath, Uri baseAddress) => new(CreateHandler(socketPath)) { BaseAddress = baseAddress };

    public static SocketsHttpHandler CreateHandler(string socketPath) => new()
        {
            ConnectCallback = async (_, ct) =>
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await s.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
                    return new NetworkStream(s, ownsSocket: true);
                }
                catch
                {
                    s.Dispose();
                    throw;
                }
            },
            // The relay opens a fresh TCP connection per socket connection; keep them short-lived.
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(20),
        };
}
