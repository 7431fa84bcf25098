using System.Net;
using System.Net.Sockets;

namespace EphemeralCI.IntegrationTests.Infrastructure;

/// <summary>A loopback TCP port nothing listens on right now (for a server a test starts on a port it must know first).</summary>
public static class FreePort
{
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
