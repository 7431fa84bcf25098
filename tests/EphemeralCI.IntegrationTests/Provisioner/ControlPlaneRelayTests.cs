using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace EphemeralCI.IntegrationTests.Provisioner;

/// <summary>
/// A job's control-plane sockets on the real relay and gateway, in front of a real HTTP server that
/// stands in for the intake, broker and cache and records what reached it: only runner routes get
/// through, and only from the process that connected first (the agent).
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class ControlPlaneRelayTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eci-relay-").FullName;
    private readonly ConcurrentQueue<string> _reached = new();
    private WebApplication? _upstream;
    private ControlPlaneRelay? _relay;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        _upstream = builder.Build();
        _upstream.Run(async context =>
        {
            _reached.Enqueue($"{context.Request.Method} {context.Request.Path}{context.Request.QueryString}");
            await context.Response.WriteAsync("upstream");
        });
        await _upstream.StartAsync();
        var address = new Uri(_upstream.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        _relay = ControlPlaneRelay.Start(Path.Combine(_dir, RelayRoutes.IntakeSocketName), address, NullLogger.Instance,
            new Dictionary<string, Uri> { [SandboxCommandBuilder.SecretsSocketName] = address, [SandboxCommandBuilder.CacheSocketName] = address },
            agentOnly: true);
    }

    private HttpClient Client(string socket) => new(new SocketsHttpHandler
    {
        ConnectCallback = async (_, ct) =>
        {
            var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            await s.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(Path.Combine(_dir, socket)), ct);
            return new System.Net.Sockets.NetworkStream(s, ownsSocket: true);
        },
    }) { BaseAddress = new Uri("http://control-plane") };

    [Fact]
    public async Task Only_runner_routes_reach_the_services_and_admin_routes_never_do()
    {
        // This process connects first, so it is the pinned "agent".
        using var intake = Client(RelayRoutes.IntakeSocketName);
        using var secrets = Client(SandboxCommandBuilder.SecretsSocketName);
        using var cache = Client(SandboxCommandBuilder.CacheSocketName);

        Assert.Equal(HttpStatusCode.OK, (await intake.GetAsync("/api/v1/runner/job")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await intake.PostAsync("/api/v1/runner/logs?offset=0", new StringContent("x"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await secrets.PostAsync("/api/v1/secrets/exchange", new StringContent("{}"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await cache.PostAsync("/twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry", new StringContent("{}"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await cache.GetAsync("/cache/blobs/42?sig=abc")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await cache.GetAsync("/cache/cas/" + new string('a', 64))).StatusCode);
        // Checkout from the mirror: git smart HTTP, upload-pack only.
        Assert.Equal(HttpStatusCode.OK, (await cache.GetAsync("/git/acme/widgets.git/info/refs?service=git-upload-pack")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await cache.PostAsync("/git/acme/widgets.git/git-upload-pack", new StringContent("0000"))).StatusCode);
        // Git LFS from the mirror: the batch API and the objects (the cache itself refuses uploads).
        Assert.Equal(HttpStatusCode.OK, (await cache.PostAsync("/git/acme/widgets.git/info/lfs/objects/batch", new StringContent("{}"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await cache.GetAsync("/git/acme/widgets.git/lfs/objects/" + new string('b', 64))).StatusCode);

        var refused = new (HttpClient Client, HttpMethod Method, string Path)[]
        {
            (intake, HttpMethod.Post, "/api/v1/api-keys"),
            (intake, HttpMethod.Get, "/api/v1/api-keys"),
            (intake, HttpMethod.Get, "/api/v1/jobs"),
            (intake, HttpMethod.Get, "/openapi/v1.json"),
            (intake, HttpMethod.Get, "/scalar"),
            (intake, HttpMethod.Get, "/health"),
            (intake, HttpMethod.Delete, "/api/v1/runner/job"),
            (intake, HttpMethod.Get, "/api/v1/runner/job/../../api-keys"),
            (intake, HttpMethod.Get, "/api/v1/runner/%2e%2e/%2e%2e/api-keys"),
            (secrets, HttpMethod.Post, "/internal/v1/job-tokens"),
            (secrets, HttpMethod.Get, "/api/v1/admin/secrets"),
            (secrets, HttpMethod.Get, "/api/v1/admin/audit"),
            (secrets, HttpMethod.Get, "/internal/v1/operator-secrets/ECI_FORGE_TOKEN"),
            // Another service's route on the wrong socket.
            (secrets, HttpMethod.Get, "/api/v1/runner/job"),
            (cache, HttpMethod.Get, "/cache/admin/usage"),
            (cache, HttpMethod.Delete, "/cache/admin/entries/1"),
            (cache, HttpMethod.Delete, "/cache/blobs/42"),
            // A runner never writes a mirror, nor asks for a fetch of its own.
            (cache, HttpMethod.Post, "/git/acme/widgets.git/git-receive-pack"),
            (cache, HttpMethod.Post, "/git/verify"),
            (cache, HttpMethod.Get, "/git/acme/widgets.git/HEAD"),
            (cache, HttpMethod.Put, "/git/acme/widgets.git/lfs/objects/" + new string('b', 64)),
            (cache, HttpMethod.Post, "/git/acme/widgets.git/info/lfs/locks"),
            (cache, HttpMethod.Get, "/git/acme/widgets.git/lfs/objects/../../../../cache/admin/usage"),
        };
        foreach (var (client, method, path) in refused)
        {
            using var response = await client.SendAsync(new HttpRequestMessage(method, path));
            Assert.True(response.StatusCode is HttpStatusCode.Forbidden or HttpStatusCode.BadRequest, $"{method} {path}: {response.StatusCode}");
        }

        Assert.Equal(
            ["GET /api/v1/runner/job", "POST /api/v1/runner/logs?offset=0", "POST /api/v1/secrets/exchange",
             "POST /twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry", "GET /cache/blobs/42?sig=abc", "GET /cache/cas/" + new string('a', 64),
             "GET /git/acme/widgets.git/info/refs?service=git-upload-pack", "POST /git/acme/widgets.git/git-upload-pack",
             "POST /git/acme/widgets.git/info/lfs/objects/batch", "GET /git/acme/widgets.git/lfs/objects/" + new string('b', 64)],
            _reached);
    }

    [Fact]
    public async Task A_second_process_gets_no_answer_on_any_socket()
    {
        using var intake = Client(RelayRoutes.IntakeSocketName);
        Assert.Equal(HttpStatusCode.OK, (await intake.GetAsync("/api/v1/runner/job")).StatusCode);

        // What a step would do: another process, the right route.
        foreach (var socket in new[] { RelayRoutes.IntakeSocketName, SandboxCommandBuilder.SecretsSocketName })
        {
            var psi = new ProcessStartInfo("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--unix-socket", Path.Combine(_dir, socket), "http://x/api/v1/runner/job"])
            {
                RedirectStandardOutput = true,
            };
            using var curl = Process.Start(psi)!;
            var code = await curl.StandardOutput.ReadToEndAsync();
            await curl.WaitForExitAsync();
            Assert.Equal("000", code);
        }
        Assert.Single(_reached);
    }

    public async Task DisposeAsync()
    {
        if (_relay is not null) await _relay.DisposeAsync();
        if (_upstream is not null) await _upstream.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }
}
