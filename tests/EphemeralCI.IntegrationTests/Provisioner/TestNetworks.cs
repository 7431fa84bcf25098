using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>
/// A stand-in for "the internet" the way a job with egress sees it: a network namespace of its own
/// behind a veth pair, with a public-looking (TEST-NET-2) address routed through the host, and a TCP
/// listener inside it that greets whoever connects. Also host-side listeners on addresses a job
/// must never reach (a private address and the cloud metadata address).
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class TestNetworks : IDisposable
{
    public const string Greeting = "hello-from-the-internet";
    private readonly string _tag = Guid.NewGuid().ToString("N")[..6];
    private readonly List<TcpListener> _listeners = [];
    private readonly CancellationTokenSource _stop = new();

    public string InternetNamespace => "eci-test-inet-" + _tag;
    private string InternetLink => "ecitin" + _tag;

    /// <summary>The host's end towards "the internet": a public-looking address of the host itself.</summary>
    public IPAddress HostPublicAddress { get; }
    public IPAddress InternetAddress { get; }
    public IPAddress HostPrivateAddress { get; }
    public static readonly IPAddress MetadataAddress = IPAddress.Parse("169.254.169.254");

    public int InternetPort { get; }
    /// <summary>Every host listener (loopback, private, metadata, any address) is on this port; each counts its connections.</summary>
    public int HostPort { get; }
    public TcpListener HostLoopback { get; }
    public TcpListener HostPrivate { get; }
    public TcpListener HostMetadata { get; }
    public TcpListener HostAny { get; }
    public int HostConnections;

    public TestNetworks()
    {
        var subnet = Random.Shared.Next(0, 63) * 4;
        HostPublicAddress = IPAddress.Parse($"198.51.100.{subnet + 1}");
        InternetAddress = IPAddress.Parse($"198.51.100.{subnet + 2}");
        HostPrivateAddress = IPAddress.Parse($"192.168.213.{Random.Shared.Next(1, 250)}");
        try
        {
            Ip($"netns add {InternetNamespace}");
            Ip($"link add {InternetLink} type veth peer name eth0 netns {InternetNamespace}");
            Ip($"addr add {HostPublicAddress}/30 dev {InternetLink}");
            Ip($"link set {InternetLink} up");
            Ip($"-n {InternetNamespace} addr add {InternetAddress}/30 dev eth0");
            Ip($"-n {InternetNamespace} link set eth0 up");
            Ip($"-n {InternetNamespace} link set lo up");
            // Host addresses a job must never reach (this kernel may lack the dummy driver: on the veth).
            Ip($"addr add {HostPrivateAddress}/32 dev {InternetLink}");
            Ip($"addr add {MetadataAddress}/32 dev {InternetLink}");

            var internet = ListenInNamespace(InternetNamespace, new IPEndPoint(IPAddress.Any, 0));
            InternetPort = ((IPEndPoint)internet.LocalEndpoint).Port;
            Serve(internet, Greeting, count: false);

            HostLoopback = Listen(new IPEndPoint(IPAddress.Loopback, 0));
            HostPort = ((IPEndPoint)HostLoopback.LocalEndpoint).Port;
            HostPrivate = Listen(new IPEndPoint(HostPrivateAddress, HostPort));
            HostMetadata = Listen(new IPEndPoint(MetadataAddress, HostPort));
            HostAny = Listen(new IPEndPoint(IPAddress.Any, 0));
            foreach (var l in new[] { HostLoopback, HostPrivate, HostMetadata, HostAny }) Serve(l, "host-service", count: true);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int HostAnyPort => ((IPEndPoint)HostAny.LocalEndpoint).Port;

    private TcpListener Listen(IPEndPoint endpoint)
    {
        var listener = new TcpListener(endpoint);
        listener.Start();
        _listeners.Add(listener);
        return listener;
    }

    private void Serve(TcpListener listener, string greeting, bool count)
    {
        _ = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    using var client = await listener.AcceptTcpClientAsync(_stop.Token);
                    if (count) Interlocked.Increment(ref HostConnections);
                    await client.GetStream().WriteAsync(Encoding.ASCII.GetBytes(greeting + "\n"), _stop.Token);
                }
                catch (Exception) when (_stop.IsCancellationRequested) { return; }
                catch (Exception) { }
            }
        });
    }

    /// <summary>
    /// A socket belongs to the network namespace of the thread that created it, for good: a thread of
    /// our own enters the namespace, creates and binds the listener, and goes back.
    /// </summary>
    private TcpListener ListenInNamespace(string ns, IPEndPoint endpoint)
    {
        TcpListener? listener = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            using var home = File.OpenHandle("/proc/thread-self/ns/net");
            using var target = File.OpenHandle($"/run/netns/{ns}");
            try
            {
                if (SetNs(target.DangerousGetHandle().ToInt32(), CloneNewNet) != 0) throw new InvalidOperationException($"setns: errno {Marshal.GetLastPInvokeError()}");
                listener = new TcpListener(endpoint);
                listener.Start();
            }
            catch (Exception ex)
            {
                failure = ex;
            }
            finally
            {
                if (SetNs(home.DangerousGetHandle().ToInt32(), CloneNewNet) != 0) failure ??= new InvalidOperationException("could not return to the host namespace");
            }
        });
        thread.Start();
        thread.Join();
        if (failure is not null) throw failure;
        _listeners.Add(listener!);
        return listener!;
    }

    private const int CloneNewNet = 0x40000000;

    [DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int SetNs(int fd, int nstype);

    public static string Ip(string args)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args.Split(' ')) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"ip {args}: {error}");
        return output;
    }

    public static string Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        return output;
    }

    public void Dispose()
    {
        _stop.Cancel();
        foreach (var l in _listeners) l.Dispose();
        try { Ip($"link delete {InternetLink}"); } catch (InvalidOperationException) { }
        try { Ip($"netns delete {InternetNamespace}"); } catch (InvalidOperationException) { }
        _stop.Dispose();
    }
}
