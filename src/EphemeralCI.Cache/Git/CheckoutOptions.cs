namespace EphemeralCI.Cache.Git;

/// <summary>
/// The <c>Checkout</c> configuration section: git mirrors on the control plane, the commit check before a runner
/// starts, and the runner's checkout from the mirror. Read by the cache (mirrors, verification, the git endpoints)
/// and by the provisioner (whether to verify before a runner starts); give both the same section.
/// </summary>
public sealed class CheckoutOptions
{
    public const string Section = "Checkout";

    /// <summary>
    /// Turns mirrors, verification and checkout on (<c>Checkout:Enabled</c>). Off by default, because an installation
    /// without a reachable forge would otherwise fail every job; with it off, jobs run on an empty workspace as before.
    /// </summary>
    public bool Enabled { get; set; }

    /// <summary>The forge URL of a repository, <c>{repository}</c> replaced by owner/name (<c>Checkout:UrlTemplate</c>).</summary>
    public string UrlTemplate { get; set; } = "https://github.com/{repository}.git";

    /// <summary>Per-repository forge URLs (<c>Checkout:Repositories:{n}:Match</c> a glob of owner/name, <c>:Url</c> a template); the first match wins.</summary>
    public List<CheckoutRepository> Repositories { get; set; } = [];

    /// <summary>
    /// The commit must be reachable from the claimed ref's tip at the forge (<c>Checkout:VerifyRef</c>, default on).
    /// Off, it need only exist in the repository.
    /// </summary>
    public bool VerifyRef { get; set; } = true;

    /// <summary>
    /// A forge token for every repository without its own (<c>Checkout:Token</c>): operator-only, used by the control
    /// plane's fetches as HTTP basic auth and never given to a runner. Unset: public repositories only.
    /// </summary>
    public string? Token { get; set; }

    /// <summary>Where the bare mirrors live, one folder per repository (<c>Checkout:MirrorRoot</c>).</summary>
    public string? MirrorRoot { get; set; }

    /// <summary>One fetch from the forge may take this long before it is killed and the job fails (<c>Checkout:FetchTimeout</c>). Default 10 minutes.</summary>
    public TimeSpan FetchTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Bytes all mirrors together may keep (<c>Checkout:MirrorBudgetBytes</c>); above it the least recently fetched
    /// mirrors are deleted (they are fetched again when next needed). Default 20 GiB.
    /// </summary>
    public long MirrorBudgetBytes { get; set; } = 20L << 30;

    /// <summary>How often mirrors are garbage-collected (<c>git maintenance run --task=gc</c>) and held to the budget (<c>Checkout:MaintenanceInterval</c>). Default 1 hour.</summary>
    public TimeSpan MaintenanceInterval { get; set; } = TimeSpan.FromHours(1);
}

/// <summary>A forge URL for the repositories matching a glob.</summary>
public sealed class CheckoutRepository
{
    /// <summary>A glob of owner/name (<c>*</c> within a segment, <c>**</c> across), e.g. <c>acme/*</c>.</summary>
    public string Match { get; set; } = "";

    /// <summary>The forge URL template for them, <c>{repository}</c> replaced by owner/name.</summary>
    public string Url { get; set; } = "";

    /// <summary>The forge token for them (operator-only; see <see cref="CheckoutOptions.Token"/>).</summary>
    public string? Token { get; set; }
}
