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
    /// Repositories of other owners that jobs may check out as submodules (<c>Checkout:SubmoduleRepositories:{n}</c>,
    /// globs of owner/name, e.g. <c>third-party/*</c>; <c>**</c> for any). A job's own owner is always allowed. The
    /// mirrors are fetched with the control plane's forge credential, so a <c>.gitmodules</c> must not reach further
    /// than the operator says.
    /// </summary>
    public List<string> SubmoduleRepositories { get; set; } = [];

    /// <summary>
    /// The commit must be reachable from the claimed ref's tip at the forge (<c>Checkout:VerifyRef</c>, default on).
    /// Off, it need only exist in the repository.
    /// </summary>
    public bool VerifyRef { get; set; } = true;

    /// <summary>
    /// The forge credential for every repository without its own, as the name of an operator-only secret in the
    /// secrets broker (<c>Checkout:TokenSecret</c>, e.g. <c>ECI_FORGE_TOKEN</c>): a token (HTTP basic) or an SSH
    /// deploy key (PEM, for <c>ssh://</c> forge URLs, with <see cref="SshKnownHosts"/>). Read by the control plane's
    /// fetches only, never given to a runner. Needs <see cref="SecretsBrokerUrl"/> and <see cref="SecretsBrokerToken"/>
    /// (the all-in-one server reads its own broker). Unset and no <see cref="Token"/>: public repositories only.
    /// </summary>
    public string? TokenSecret { get; set; }

    /// <summary>
    /// Alternatively the forge token itself (<c>Checkout:Token</c>) from the host's secret store (environment,
    /// Kubernetes Secret); <see cref="TokenSecret"/> is preferred (rotated in one place, every read audited).
    /// </summary>
    public string? Token { get; set; }

    /// <summary>The broker's admin listener, where the cache reads operator-only secrets (<c>Checkout:SecretsBrokerUrl</c>).</summary>
    public string? SecretsBrokerUrl { get; set; }

    /// <summary>The cache's credential there (<c>Checkout:SecretsBrokerToken</c>; the broker's <c>SecretsBroker:CacheToken</c>).</summary>
    public string? SecretsBrokerToken { get; set; }

    /// <summary>
    /// The forge's SSH host keys, in known_hosts format (<c>Checkout:SshKnownHosts</c>), required for deploy keys:
    /// host keys are checked strictly, never learnt on first use.
    /// </summary>
    public string? SshKnownHosts { get; set; }

    /// <summary>Where the bare mirrors live, one folder per repository (<c>Checkout:MirrorRoot</c>).</summary>
    public string? MirrorRoot { get; set; }

    /// <summary>One fetch from the forge may take this long before it is killed and the job fails (<c>Checkout:FetchTimeout</c>). Default 10 minutes.</summary>
    public TimeSpan FetchTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Bytes all mirrors together may keep (<c>Checkout:MirrorBudgetBytes</c>); above it the least recently fetched
    /// mirrors are deleted (they are fetched again when next needed). Default 20 GiB.
    /// </summary>
    public long MirrorBudgetBytes { get; set; } = 20L << 30;

    /// <summary>
    /// Bytes of packs kept for the next runner asking for the same commit at the same depth (<c>Checkout:PackCacheBytes</c>;
    /// 0 turns the pack cache off). Default 4 GiB; the least recently served go first.
    /// </summary>
    public long PackCacheBytes { get; set; } = 4L << 30;

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

    /// <summary>The operator-only secret holding their forge credential (see <see cref="CheckoutOptions.TokenSecret"/>).</summary>
    public string? TokenSecret { get; set; }

    /// <summary>The forge token for them (operator-only; see <see cref="CheckoutOptions.Token"/>).</summary>
    public string? Token { get; set; }
}
