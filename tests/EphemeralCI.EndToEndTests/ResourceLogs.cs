using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;

namespace EphemeralCI.EndToEndTests;

/// <summary>What an AppHost resource printed so far (every replica's console), read through Aspire's resource logger.</summary>
public static class ResourceLogs
{
    public static async Task<List<string>> AllLinesAsync(DistributedApplication app, string resource, TimeSpan? within = null)
    {
        // By the resource, not its name: the logger keys logs by DCP's instance names (e.g. intake-abcd1234).
        var model = app.Services.GetRequiredService<DistributedApplicationModel>().Resources.Single(r => r.Name == resource);
        var lines = new List<string>();
        using var timeout = new CancellationTokenSource(within ?? TimeSpan.FromSeconds(5));
        try
        {
            await foreach (var batch in app.Services.GetRequiredService<ResourceLoggerService>().GetAllAsync(model).WithCancellation(timeout.Token))
            {
                lines.AddRange(batch.Select(l => l.Content));
            }
        }
        catch (OperationCanceledException) { }
        return lines;
    }
}
