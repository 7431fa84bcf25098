using System.Collections.Concurrent;
using System.Net;
using System.Net.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace EphemeralCI.Provisioner.Backends.LocalSandbox;

/// <summary>
/// Where every sandbox's control-plane sockets lead: one small HTTP server per (socket kind,
/// service) and process, on a loopback port, that lets the runner routes of <see cref="RelayRoutes"/>
/// through to the service (YARP's forwarder: streaming bodies, hop-by-hop headers, HTTP/1.1
/// framing done by Kestrel, so no request can be smuggled past the check) and answers anything
/// else 403. The per-job <see cref="ControlPlaneRelay"/> stays a byte relay in front of it, because
/// it alone sees the peer's process (SO_PEERCRED) to pin the agent; the gateway is shared, so a
/// runner's start pays for neither a server nor a route table.
/// </summary>
/// <remarks>
/// Loopback is no wider than before: the services themselves listen there, so a local user who can
/// reach the gateway could reach more by going around it. The gateway narrows what a job can ask.
/// </remarks>
public sealed class ControlPlaneGateway : IAsyncDisposable
{
    private static readonly ConcurrentDictionary<(string Socket, Uri Target), Lazy<Task<ControlPlaneGateway>>> Running = new();

    private readonly WebApplication _app;

    private ControlPlaneGateway(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    /// <summary>http://127.0.0.1:port of this gateway.</summary>
    public Uri Address { get; }

    /// <summary>The gateway for the socket kind (its file name) and service, started on first use and kept for the process's life.</summary>
    public static async Task<ControlPlaneGateway> ForAsync(string socketName, Uri target, ILogger logger)
    {
        var starting = Running.GetOrAdd((socketName, target), key => new(() => StartAsync(key.Socket, key.Target, logger)));
        try
        {
            return await starting.Value;
        }
        catch
        {
            // A gateway that failed to start is not kept: the next connection tries again.
            Running.TryRemove(new((socketName, target), starting));
            throw;
        }
    }

    private static async Task<ControlPlaneGateway> StartAsync(string socketName, Uri target, ILogger logger)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http1);
            // Cache archives and long log uploads: the services set their own limits.
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.AddServerHeader = false;
        });
        builder.Services.AddHttpForwarder();
        var app = builder.Build();
        var forwarder = app.Services.GetRequiredService<IHttpForwarder>();
        var client = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ConnectTimeout = TimeSpan.FromSeconds(15),
        });
        var destination = target.GetLeftPart(UriPartial.Authority);
        app.Run(async context =>
        {
            var path = context.Request.Path.Value ?? "/";
            if (!RelayRoutes.Allows(socketName, context.Request.Method, path))
            {
                logger.LogWarning("Control-plane gateway {Socket} refused {Method} {Path}: not a runner route", socketName, context.Request.Method, path);
                context.Response.StatusCode = StatusCodes.Status403Forbidden;
                await context.Response.WriteAsJsonAsync(new
                {
                    type = "https://ephemeralci.dev/problems/not-a-runner-route",
                    title = "Not a runner route",
                    status = 403,
                    detail = $"{context.Request.Method} {path} is not reachable from a runner's {socketName}",
                }, context.RequestAborted);
                return;
            }
            var error = await forwarder.SendAsync(context, destination, client, ForwarderRequestConfig.Empty);
            if (error != ForwarderError.None && !context.RequestAborted.IsCancellationRequested)
            {
                logger.LogWarning("Control-plane gateway {Socket} could not forward to {Target}: {Error}", socketName, destination, error);
            }
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return new ControlPlaneGateway(app, new Uri(address));
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
