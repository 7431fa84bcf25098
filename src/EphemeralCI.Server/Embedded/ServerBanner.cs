using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace EphemeralCI.Server.Embedded;

/// <summary>
/// Once listening: where the server is and where its data is.
/// </summary>
public sealed class ServerBanner(
    IServer server,
    IHostApplicationLifetime lifetime,
    IConfiguration configuration,
    ServerDataDirectory data) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() =>
        {
            var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses.ToArray() ?? [];
            // A dynamic port (":0", tests) is known only now: point the runners' relay at it.
            if (addresses.FirstOrDefault(a => a.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) is { } bound
                && (configuration[ServerExtensions.RelayTargetKeys[0]] ?? "").EndsWith(":0", StringComparison.Ordinal))
            {
                var self = ServerExtensions.SelfUrl(bound);
                foreach (var key in ServerExtensions.RelayTargetKeys) configuration[key] = self;
            }

            Console.WriteLine($"EphemeralCI server listening on {string.Join(", ", addresses)}");
            Console.WriteLine($"  data:    {data.Root}");
            Console.WriteLine($"  API:     {addresses.FirstOrDefault()}/scalar   health: {addresses.FirstOrDefault()}/health");
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
