using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace EphemeralCI.Cache.Storage;

/// <summary>Ready only while S3 answers and the cache bucket exists.</summary>
internal sealed class S3BucketHealthCheck(S3BlobStore store) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            return await store.BucketExistsAsync(cancellationToken)
                ? HealthCheckResult.Healthy($"bucket '{store.Bucket}' exists")
                : HealthCheckResult.Unhealthy($"bucket '{store.Bucket}' does not exist");
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            return HealthCheckResult.Unhealthy($"S3 at {store.Settings.Endpoint} did not answer", e);
        }
    }
}
