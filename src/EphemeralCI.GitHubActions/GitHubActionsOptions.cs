namespace EphemeralCI.GitHubActions;

/// <summary>
/// <c>GitHubActions</c>: the GitHub App and which workflow jobs get EphemeralCI runners. The module is off
/// unless <see cref="AppId"/> is set. The App's private key and the webhook secret are never configuration:
/// they are operator-only secrets in the broker, named by <see cref="PrivateKeySecret"/> and <see cref="WebhookSecret"/>.
/// </summary>
public sealed class GitHubActionsOptions
{
    public const string Section = "GitHubActions";

    /// <summary>The GitHub App's id (public: it is the <c>iss</c> of every App JWT and shown on the App's page).</summary>
    public string? AppId { get; set; }

    /// <summary>The broker's operator-only secret holding the App's private key (PEM).</summary>
    public string PrivateKeySecret { get; set; } = "ECI_GITHUB_APP_PRIVATE_KEY";

    /// <summary>The broker's operator-only secret holding the App's webhook secret.</summary>
    public string WebhookSecret { get; set; } = "ECI_GITHUB_WEBHOOK_SECRET";

    /// <summary>GitHub's REST API (GitHub Enterprise Server: <c>https://HOST/api/v3</c>).</summary>
    public Uri ApiUrl { get; set; } = new("https://api.github.com");

    /// <summary>Repositories (<c>owner/name</c>) whose workflow jobs are served; the reconciler lists these. Others are ignored.</summary>
    public List<string> Repositories { get; set; } = [];

    /// <summary>Adapter templates by name: which <c>runs-on</c> labels each covers and the EphemeralCI runner template it runs on.</summary>
    public Dictionary<string, GitHubRunnerTemplate> Templates { get; set; } = [];

    /// <summary>How often the reconciler looks for missed webhooks, finished runners and cancelled workflow jobs.</summary>
    public TimeSpan ReconcileInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Most pages (of 100) read of one GitHub list in a pass: the runners of a repository or organization, the queued
    /// workflow runs of a repository, the jobs of one run. What lies beyond waits for a later pass (and is logged).
    /// </summary>
    public int MaxListPages { get; set; } = 10;

    public bool Enabled => !string.IsNullOrWhiteSpace(AppId);
}

/// <summary>One kind of runner offered to GitHub.</summary>
public sealed class GitHubRunnerTemplate
{
    /// <summary>The EphemeralCI runner template whose image carries the Actions runner.</summary>
    public string RunnerTemplate { get; set; } = "";

    /// <summary>The runner's labels: a workflow job is served when every one of its <c>runs-on</c> labels is here (case-insensitive).</summary>
    public List<string> Labels { get; set; } = [];

    /// <summary>The runner group's id (1: the default group).</summary>
    public long RunnerGroupId { get; set; } = 1;

    /// <summary>Register organization runners (<c>POST /orgs/{org}/actions/runners/generate-jitconfig</c>) instead of repository runners.</summary>
    public bool Organization { get; set; }

    /// <summary>The one step's script; the JIT config is in <c>$GITHUB_JIT_CONFIG</c> (never in the script itself).</summary>
    public string RunnerCommand { get; set; } = "cd /home/runner && exec ./run.sh --jitconfig \"$GITHUB_JIT_CONFIG\"";

    /// <summary>
    /// Warm runners kept registered and idle (ARC's <c>minRunners</c>), so a queued workflow job is taken at once; 0: none.
    /// Per repository for repository runners, per organization for organization runners. At most <see cref="MaxMinIdle"/>.
    /// </summary>
    public int MinIdle { get; set; }

    /// <summary>An idle warm runner older than this is removed from GitHub and its job cancelled (then replaced), so none lives for days.</summary>
    public TimeSpan MaxIdleAge { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Each warm runner holds a runner (a sandbox or pod) outside any job: a template asks for a handful, not a fleet.</summary>
    public const int MaxMinIdle = 32;

    /// <summary>Job timeout in seconds (null: the runner template's default).</summary>
    public int? TimeoutSeconds { get; set; }

    /// <summary>
    /// Repositories allowed to use this template (<c>owner/name</c>, or <c>owner/*</c> for every repository of an owner;
    /// case-insensitive). Empty: every served repository. An organization runner group restricted to repositories is the
    /// other layer: GitHub hands a registered runner any job whose labels it has, in any repository the group admits.
    /// </summary>
    public List<string> Repositories { get; set; } = [];

    // GitHub's owner (letters, digits, hyphens) and repository (also '.' and '_') names; '*' only as the whole name.
    private static readonly System.Text.RegularExpressions.Regex RepositoryPattern =
        new(@"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/(?:\*|[A-Za-z0-9._-]{1,100})$", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    public static bool IsRepositoryPattern(string pattern) => RepositoryPattern.IsMatch(pattern) && !pattern.EndsWith("/.", StringComparison.Ordinal) && !pattern.EndsWith("/..", StringComparison.Ordinal);

    /// <summary>Whether <paramref name="repository"/> (<c>owner/name</c>) may use this template: the glob dialect of API key
    /// bindings and trust policies (<see cref="EphemeralCI.JobTokens.IdentityGlob"/>), repositories case-insensitively.</summary>
    public bool Allows(string repository) =>
        Repositories.Count == 0 || EphemeralCI.JobTokens.IdentityGlob.MatchesAny(Repositories, repository, ignoreCase: true);

    public bool Covers(IReadOnlyCollection<string> runsOn) =>
        runsOn.Count > 0 && runsOn.All(l => Labels.Contains(l, StringComparer.OrdinalIgnoreCase));
}
