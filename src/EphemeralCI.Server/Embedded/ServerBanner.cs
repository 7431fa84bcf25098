using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace EphemeralCI.Server.Embedded;

/// <summary>
/// Once listening: where the server is, where its data is, and any credential made on this start.
/// Printed to stdout, never through ILogger: logs are shipped and kept, one-time credentials must not be.
/// </summary>
public sealed class ServerBanner(
    IServer server,
    IHostApplicationLifetime lifetime,
    IConfiguration configuration,
    ServerDataDirectory data,
    FirstRunCredentials firstRun) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() =>
        {
            var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses.ToArray() ?? [];
            // A dynamic port (":0", tests) is known only now: point the runners' relay at it.
            if (addresses.FirstOrDefault(a => a.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) is { } bound
                && (configuration["Provisioner:IntakeUrl"] ?? "").EndsWith(":0", StringComparison.Ordinal))
            {
                configuration["Provisioner:IntakeUrl"] = ServerExtensions.SelfUrl(bound);
                configuration["Provisioner:SecretsBrokerUrl"] = ServerExtensions.SelfUrl(bound);
            }

            Console.WriteLine($"EphemeralCI server listening on {string.Join(", ", addresses)}");
            Console.WriteLine($"  data:    {data.Root}");
            Console.WriteLine($"  API:     {addresses.FirstOrDefault()}/scalar   health: {addresses.FirstOrDefault()}/health");
            if (firstRun.SecretsAdminToken is { } token)
            {
                Console.WriteLine("  A secrets admin token was created (eci secrets …). It is shown only this once:");
                Console.WriteLine($"  {token}");
                firstRun.SecretsAdminToken = null;
            }
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
