namespace EphemeralCI.Cache;

/// <summary>The <c>Cache</c> configuration section.</summary>
public sealed class CacheOptions
{
    public const string Section = "Cache";

    /// <summary>Largest object one PUT may store (<c>Cache:MaxObjectBytes</c>); bigger uploads get 413. Default 1 GiB.</summary>
    public long MaxObjectBytes { get; set; } = 1L << 30;

    /// <summary>
    /// Where uploads are spooled while they are hashed, before they go to S3 with a known length
    /// (<c>Cache:SpoolDirectory</c>). Needs room for the uploads in flight. Default: a folder in the system temp directory.
    /// </summary>
    public string SpoolDirectory { get; set; } = Path.Combine(Path.GetTempPath(), "ephemeralci-cache-spool");

    /// <summary>How long start-up waits for S3 to answer before giving up (<c>Cache:StorageStartupTimeout</c>).</summary>
    public TimeSpan StorageStartupTimeout { get; set; } = TimeSpan.FromMinutes(2);
}
