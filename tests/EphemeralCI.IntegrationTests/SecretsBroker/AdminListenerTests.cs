using EphemeralCI.IntegrationTests.Infrastructure;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using EphemeralCI.JobTokens;
using Xunit;

namespace EphemeralCI.IntegrationTests.SecretsBroker;

/// <summary>
/// Issue 20 item 5: with an administration listener, secrets administration, audit and token minting
/// answer only there — on the port runners reach they are 404, whatever the token or Host header says.
/// </summary>
public sealed class AdminListenerTests
{

    [Fact]
    public async Task Operator_routes_answer_on_the_admin_port_only_and_the_runner_routes_on_both()
    {
        var (publicPort, adminPort) = (FreePort.Next(), FreePort.Next());
        await using var broker = await BrokerTestApp.StartAsync(overKestrel: true,
            urls: $"http://127.0.0.1:{publicPort};http://127.0.0.1:{adminPort}",
            extra: new Dictionary<string, string?> { ["AdminListener:Port"] = adminPort.ToString() });
        using var runnerSide = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{publicPort}") };
        using var adminSide = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort}") };

        HttpRequestMessage Admin(string path, string? host = null)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, path) { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", BrokerTestApp.AdminToken) } };
            if (host is not null) request.Headers.Host = host;
            return request;
        }
        HttpRequestMessage Mint() => new(HttpMethod.Post, "/internal/v1/job-tokens")
        {
            Headers = { Authorization = new AuthenticationHeaderValue("Bearer", BrokerTestApp.ProvisionerToken) },
            Content = JsonContent.Create(new JobTokenRequest(Guid.NewGuid(), "acme/widgets", "refs/heads/main", DateTimeOffset.UtcNow.AddMinutes(5),
                "0123456789abcdef0123456789abcdef01234567", "default", null)),
        };

        // The runner side: valid operator tokens, a forged Host header — still nothing.
        using (var r = await runnerSide.SendAsync(Admin("/api/v1/admin/secrets"))) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        using (var r = await runnerSide.SendAsync(Admin("/api/v1/admin/secrets", host: $"127.0.0.1:{adminPort}"))) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        using (var r = await runnerSide.SendAsync(Admin("/api/v1/admin/audit/"))) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        using (var r = await runnerSide.SendAsync(Mint())) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);

        // The admin side works as before.
        using (var r = await adminSide.SendAsync(Admin("/api/v1/admin/secrets"))) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        using (var r = await adminSide.SendAsync(Mint())) Assert.Equal(HttpStatusCode.OK, r.StatusCode);

        // What runners need stays on their port: the signing keys (and the exchange, authenticated by a job token).
        using (var r = await runnerSide.GetAsync("/.well-known/jwks.json")) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        using (var r = await runnerSide.PostAsJsonAsync("/api/v1/secrets/exchange", new { secrets = new[] { "X" } })) Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
    }
}
