using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Storage;

/// <summary>
/// Creates the cache bucket at start-up when it is missing, retrying while S3 is not up yet
/// (services start in any order), and stops the host with the setting's name when S3 never answers.
/// </summary>
internal sealed class S3BucketInitializer(
    S3BlobStore store, IOptions<CacheOptions> options, TimeProvider clock, ILogger<S3BucketInitializer> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var deadline = clock.GetUtcNow() + options.Value.StorageStartupTimeout;
        var delay = TimeSpan.FromMilliseconds(250);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                if (await store.EnsureBucketAsync(cancellationToken)) logger.LogInformation("Created cache bucket {Bucket}", store.Bucket);
                return;
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested && clock.GetUtcNow() + delay < deadline)
            {
                logger.LogWarning(e, "S3 at {Endpoint} not ready (attempt {Attempt}); retrying in {Delay}", store.Settings.Endpoint, attempt, delay);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                throw new InvalidOperationException(
                    $"S3 at {store.Settings.Endpoint} (ConnectionStrings:minio) did not let us use bucket '{store.Bucket}' within {options.Value.StorageStartupTimeout}.", e);
            }
            await Task.Delay(delay, clock, cancellationToken);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
