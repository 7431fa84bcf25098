namespace EphemeralCI.Cache;

/// <summary>The <c>Cache</c> configuration section.</summary>
public sealed class CacheOptions
{
    public const string Section = "Cache";

    /// <summary>Largest object one PUT or one entry may store (<c>Cache:MaxObjectBytes</c>); bigger uploads get 413. Default 10 GiB.</summary>
    public long MaxObjectBytes { get; set; } = 10L << 30;

    /// <summary>
    /// Where uploads are spooled while they are hashed, before they go to the object store with a known
    /// length (<c>Cache:SpoolDirectory</c>). Needs room for the uploads in flight. Default: a folder in the system temp directory.
    /// </summary>
    public string SpoolDirectory { get; set; } = Path.Combine(Path.GetTempPath(), "ephemeralci-cache-spool");

    /// <summary>How long start-up waits for S3 to answer before giving up (<c>Cache:StorageStartupTimeout</c>).</summary>
    public TimeSpan StorageStartupTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Objects go to this local folder instead of S3 (<c>Cache:FileSystemRoot</c>). Also the store used,
    /// with a default folder, when <c>ConnectionStrings:minio</c> is not set (the embedded default).
    /// </summary>
    public string? FileSystemRoot { get; set; }

    /// <summary>Committed bytes one repository may keep (<c>Cache:RepositoryQuotaBytes</c>); least recently used entries go first. Default 10 GiB.</summary>
    public long RepositoryQuotaBytes { get; set; } = 10L << 30;

    /// <summary>
    /// Committed bytes one ref other than the default branch may keep (<c>Cache:ScopeQuotaBytes</c>), within the repository's quota;
    /// its own least recently used entries go first. The default branch's budget is the whole repository quota. Default 2 GiB.
    /// </summary>
    public long ScopeQuotaBytes { get; set; } = 2L << 30;

    /// <summary>The HTTP build cache (<c>Cache:BuildCache</c>).</summary>
    public BuildCacheOptions BuildCache { get; set; } = new();

    /// <summary>Entries not restored for this long are deleted (<c>Cache:ExpireAfterUnused</c>). Default 7 days.</summary>
    public TimeSpan ExpireAfterUnused { get; set; } = TimeSpan.FromDays(7);

    /// <summary>A reservation not committed within this time is dropped with its upload (<c>Cache:UploadTimeout</c>). Default 1 hour.</summary>
    public TimeSpan UploadTimeout { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// A restore records its access time (LRU eviction, expiry) at most once per entry per this interval
    /// (<c>Cache:AccessTouchInterval</c>): every hit writing the row (an indexed column, so never a HOT update)
    /// was most of a hit's cost. Eviction order and expiry are exact to within it. Zero touches on every hit. Default 1 minute.
    /// </summary>
    public TimeSpan AccessTouchInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How long a cached lookup answer lives (<c>Cache:LookupCacheLifetime</c>). Answers never go stale while they
    /// live (every change to a repository's entries starts a new generation); this only bounds memory. Zero turns the lookup cache off. Default 10 minutes.
    /// </summary>
    public TimeSpan LookupCacheLifetime { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Names this cache's keys in Redis, lookup answers and upload reservations (<c>Cache:RedisNamespace</c>): two cache
    /// deployments with different databases sharing one Redis must not read each other's answers (entry ids would point into
    /// the other database) nor see each other's reservations (a false "busy"). Unset, it is derived from the host, port and
    /// database of <c>ConnectionStrings:cachedb</c>, which every replica of one deployment shares; set it explicitly when
    /// replicas reach the same database by different addresses.
    /// </summary>
    public string? RedisNamespace { get; set; }

    /// <summary>How often the janitor expires, evicts and cleans up (<c>Cache:JanitorInterval</c>). Default 5 minutes.</summary>
    public TimeSpan JanitorInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The ref whose entries every other ref of a repository may restore (<c>Cache:DefaultBranch</c>),
    /// unless <see cref="DefaultBranches"/> names one for the repository. Default <c>refs/heads/main</c>.
    /// </summary>
    public string DefaultBranch { get; set; } = "refs/heads/main";

    /// <summary>Default branch per repository (<c>Cache:DefaultBranches:{owner/name}</c>), e.g. <c>refs/heads/master</c>.</summary>
    public Dictionary<string, string> DefaultBranches { get; set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// HMAC key of the signed upload/download URLs (<c>Cache:UrlSigningKey</c>, base64 of ≥32 bytes). Every
    /// replica behind one address needs the same key; unset, each process makes a random one.
    /// </summary>
    public string? UrlSigningKey { get; set; }

    /// <summary>How long a signed upload or download URL is valid (<c>Cache:SignedUrlLifetime</c>). Default 1 hour.</summary>
    public TimeSpan SignedUrlLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Base address put into signed URLs (<c>Cache:PublicBaseUrl</c>, e.g. <c>https://cache.example.com</c>);
    /// unset, the address the client called is used.
    /// </summary>
    public string? PublicBaseUrl { get; set; }

    /// <summary>
    /// Hand clients that verify the archive themselves (the runner agent) a presigned S3 GET as well
    /// (<c>Cache:DirectDownloads</c>, lookup field <c>direct_download_url</c>), so restores leave the cache's data path.
    /// Only where runners reach the S3 endpoint under the address in <c>ConnectionStrings:minio</c> (the local sandbox
    /// reaches only the cache's socket). Default off: streaming keeps the cache's own integrity check on every byte.
    /// </summary>
    public bool DirectDownloads { get; set; }

    /// <summary>Validity of a presigned direct download URL (<c>Cache:DirectDownloadLifetime</c>). Default 15 minutes.</summary>
    public TimeSpan DirectDownloadLifetime { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Bearer credential of the admin API (<c>Cache:AdminToken</c>); kept only as a SHA-256 hash. Empty disables the admin API.</summary>
    public string AdminToken { get; set; } = "";

    /// <summary>Alternatively the admin credential's SHA-256 in hex (<c>Cache:AdminTokenSha256</c>), as the embedded server keeps it.</summary>
    public string? AdminTokenSha256 { get; set; }

    /// <summary>
    /// The intake's credential for reading what the cache served to a job (<c>Cache:AttestationToken</c>; its
    /// <c>Attestations:CacheToken</c>), on the admin listener. Empty: nobody reads it over HTTP.
    /// </summary>
    public string AttestationToken { get; set; } = "";

    /// <summary>How long the record of what each job was served is kept (<c>Cache:UseRecordRetention</c>). Default 30 days.</summary>
    public TimeSpan UseRecordRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>
    /// Bytes the scope <paramref name="scope"/> of <paramref name="repository"/> may keep: the repository quota for its
    /// default branch, <see cref="ScopeQuotaBytes"/> (at most the repository quota) for every other ref.
    /// </summary>
    public long ScopeQuotaOf(string repository, string scope) =>
        scope == DefaultBranchOf(repository) ? RepositoryQuotaBytes : Math.Min(ScopeQuotaBytes, RepositoryQuotaBytes);

    /// <summary>The default branch whose entries <paramref name="repository"/>'s other refs may restore.</summary>
    public string DefaultBranchOf(string repository) =>
        DefaultBranches.TryGetValue(repository, out var branch) && !string.IsNullOrWhiteSpace(branch) ? branch : DefaultBranch;
}

/// <summary>The <c>Cache:BuildCache</c> section: who may write action results.</summary>
public sealed class BuildCacheOptions
{
    /// <summary>In <see cref="TrustedRefs"/>: the repository's default branch (<c>Cache:DefaultBranch</c> / <c>DefaultBranches</c>).</summary>
    public const string DefaultBranchToken = "@default";

    /// <summary>
    /// Refs whose jobs may write action-cache (<c>/ac/</c>) entries (<c>Cache:BuildCache:TrustedRefs:0…</c>): full refs,
    /// <c>*</c> and <c>?</c> as wildcards (<c>refs/heads/release/*</c>), <c>@default</c> for the repository's default branch.
    /// Every other ref reads action results but never writes them: an action result is not checked against anything
    /// (unlike a CAS blob), so whoever writes it decides what a later build links. Empty (the default): only the default branch.
    /// </summary>
    public List<string> TrustedRefs { get; set; } = [];

    /// <summary>Whether a job on <paramref name="gitRef"/> may write action results of <paramref name="repository"/>.</summary>
    public bool MayWriteActionResults(string gitRef, string defaultBranch)
    {
        if (TrustedRefs.Count == 0) return gitRef == defaultBranch;
        foreach (var pattern in TrustedRefs)
        {
            if (pattern == DefaultBranchToken ? gitRef == defaultBranch
                : System.IO.Enumeration.FileSystemName.MatchesSimpleExpression(pattern, gitRef, ignoreCase: false)) return true;
        }
        return false;
    }
}
