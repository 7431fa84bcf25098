using EphemeralCI.Contracts.Jobs;
using System.Diagnostics.Metrics;
using System.Text;
using System.Text.RegularExpressions;
using EphemeralCI.JobTokens;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Cache.Git;

/// <summary>Why a commit was refused: <see cref="Field"/> is <c>ref</c> or <c>commitSha</c>.</summary>
public sealed record CommitVerification(bool Verified, string? Field, string Detail, string? RefTip)
{
    public static CommitVerification Refused(string field, string detail, string? tip = null) => new(false, field, detail, tip);
}

/// <summary>A fetch from the forge failed (unreachable, refused, timed out); the message is safe to show (no credential).</summary>
public sealed class MirrorFetchException(string message) : Exception(message);

/// <summary>
/// One bare mirror per repository under <see cref="CheckoutOptions.MirrorRoot"/>, fetched from the forge with the real
/// <c>git</c> CLI (heads, tags, and the pull/merge-request refs jobs claim). Concurrent requests of one repository share
/// fetches: a request joins the fetch already running, and only if that one does not show its commit on its ref does it
/// wait for the next fetch, which starts once the running one ends and serves every request that queued meanwhile. So N
/// jobs of one push cost one fetch, and a commit pushed after a fetch started is still seen.
/// </summary>
public sealed partial class GitMirrors
{
    private static readonly Meter Meter = new("EphemeralCI.Cache.Git");
    private static readonly Counter<long> Fetches = Meter.CreateCounter<long>("eci.cache.git.fetches", description: "Fetches from the forge into a mirror");

    private readonly CheckoutOptions _options;
    private readonly IForgeCredentials _credentials;
    private readonly ILogger<GitMirrors> _logger;
    private readonly Dictionary<string, MirrorState> _states = new(StringComparer.Ordinal);
    private long _fetchCount;

    public GitMirrors(IOptions<CheckoutOptions> options, IForgeCredentials credentials, ILogger<GitMirrors> logger)
    {
        _options = options.Value;
        _credentials = credentials;
        _logger = logger;
        Root = Path.GetFullPath(string.IsNullOrWhiteSpace(_options.MirrorRoot) ? DefaultRoot() : _options.MirrorRoot);
    }

    /// <summary>The folder holding every mirror (<c>{owner}/{name}.git</c>, lower case).</summary>
    public string Root { get; }

    public bool Enabled => _options.Enabled;

    /// <summary>Fetches from the forge this process started (all repositories).</summary>
    public long FetchCount => Interlocked.Read(ref _fetchCount);

    /// <summary>The mirror's folder name under <see cref="Root"/>: <c>owner/name.git</c>, lower case (forges treat names case-insensitively).</summary>
    public static string RelativePath(string repository) => repository.ToLowerInvariant() + ".git";

    public string MirrorPath(string repository) => Path.Combine(Root, RelativePath(repository));

    /// <summary>owner/name with characters a forge allows; no dot segments.</summary>
    public static bool IsRepository(string? repository) =>
        repository is { Length: > 2 and <= 200 } && RepositoryPattern().IsMatch(repository) && !repository.Split('/').Any(s => s is "." or ".." || s.StartsWith('.'));

    /// <summary>A ref a job may claim: a branch, a tag, a GitHub pull request or a GitLab merge request.</summary>
    public static bool IsClaimableRef(string? gitRef) => gitRef is { Length: <= 256 } && ClaimableRef().IsMatch(gitRef) && !gitRef.Contains("..") && !gitRef.EndsWith(".lock", StringComparison.Ordinal) && !gitRef.Contains("/.") && !gitRef.Contains("@{");

    public static bool IsCommitSha(string? sha) => sha is not null && CommitShaPattern().IsMatch(sha);

    /// <summary>The forge URL of <paramref name="repository"/>: the first matching <c>Checkout:Repositories</c> entry, else <c>Checkout:UrlTemplate</c>.</summary>
    public string ForgeUrl(string repository)
    {
        var template = _options.Repositories.FirstOrDefault(r => !string.IsNullOrWhiteSpace(r.Url) && IdentityGlob.Matches(r.Match, repository, ignoreCase: true))?.Url
            ?? _options.UrlTemplate;
        return template.Replace("{repository}", repository, StringComparison.Ordinal);
    }

    /// <summary>
    /// Fetches (or joins a fetch of) the repository, then checks that <paramref name="commitSha"/> exists and, with
    /// <c>Checkout:VerifyRef</c>, is reachable from <paramref name="gitRef"/>'s tip at the forge.
    /// </summary>
    /// <exception cref="MirrorFetchException">The forge could not be fetched.</exception>
    public async Task<CommitVerification> VerifyAsync(string repository, string gitRef, string commitSha, CancellationToken ct)
    {
        if (!IsRepository(repository)) return CommitVerification.Refused("repository", $"'{repository}' is not an owner/name repository");
        if (!IsClaimableRef(gitRef)) return CommitVerification.Refused("ref", $"'{gitRef}' is not a branch (refs/heads/…), tag (refs/tags/…), pull request (refs/pull/N/merge|head) or merge request (refs/merge-requests/N/head|merge) ref");
        if (commitSha is null || !IsCommitSha(commitSha.ToLowerInvariant())) return CommitVerification.Refused("commitSha", $"'{commitSha}' is not a full commit SHA (40 or 64 lower-case hex digits)");
        commitSha = commitSha.ToLowerInvariant();
        var extraRef = gitRef.StartsWith("refs/heads/", StringComparison.Ordinal) || gitRef.StartsWith("refs/tags/", StringComparison.Ordinal) ? null : gitRef;
        var mirror = MirrorPath(repository);

        // Without the ref check, a commit the mirror already has needs no fetch at all.
        if (!_options.VerifyRef && Directory.Exists(mirror) && await HasCommitAsync(mirror, commitSha, ct)) return Verified(null);

        if (JoinRunning(repository, extraRef) is { } running)
        {
            try
            {
                await running.WaitAsync(ct);
                var early = await CheckAsync(repository, mirror, gitRef, commitSha, ct);
                if (early.Verified) return early;
            }
            catch (MirrorFetchException) { /* the next fetch tries again */ }
        }
        await FetchNextAsync(repository, extraRef).WaitAsync(ct);
        return await CheckAsync(repository, mirror, gitRef, commitSha, ct);
    }

    /// <summary>Makes sure the repository has a mirror (fetching it if not), e.g. before serving it to a runner.</summary>
    public async Task EnsureMirrorAsync(string repository, CancellationToken ct)
    {
        if (Directory.Exists(Path.Combine(MirrorPath(repository), "objects"))) return;
        await FetchNextAsync(repository, null).WaitAsync(ct);
    }

    /// <summary>The mirror exists and holds <paramref name="commitSha"/> (a submodule's gitlink), fetched from the forge if it does not yet.</summary>
    public async Task EnsureMirrorAsync(string repository, string? commitSha, CancellationToken ct)
    {
        await EnsureMirrorAsync(repository, ct);
        if (commitSha is null || await HasCommitAsync(MirrorPath(repository), commitSha, ct)) return;
        await FetchNextAsync(repository, null).WaitAsync(ct);
    }

    /// <summary>How deep submodules of submodules are followed (git's own recursion has no limit; ours does).</summary>
    public const int MaxSubmoduleDepth = 4;

    /// <summary>
    /// Whether <paramref name="repository"/> is a submodule of <paramref name="commitSha"/> in <paramref name="jobRepository"/>'s
    /// mirror — named in its <c>.gitmodules</c> (absolute or relative URL), or nested: a submodule of such a submodule at the
    /// commit its gitlink records, up to <see cref="MaxSubmoduleDepth"/> levels. A job may then fetch it too, as the
    /// (recursive) submodule checkout of its own commit needs. Gives the commit its gitlink records (null when unknown).
    /// </summary>
    public async Task<(bool IsSubmodule, string? Commit)> FindSubmoduleAsync(string jobRepository, string commitSha, string repository, CancellationToken ct)
    {
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var level = new List<(string Repository, string Commit)> { (jobRepository, commitSha.ToLowerInvariant()) };
        for (var depth = 0; depth < MaxSubmoduleDepth && level.Count > 0; depth++)
        {
            var next = new List<(string, string)>();
            foreach (var (superproject, commit) in level)
            {
                if (!seen.Add($"{superproject}@{commit}")) continue;
                foreach (var (submodule, gitlink) in await SubmodulesAsync(superproject, commit, ct))
                {
                    // A job's .gitmodules is the job's word: it opens only repositories the operator lets this one reach.
                    if (!MaySubmodule(jobRepository, submodule)) continue;
                    if (string.Equals(submodule, repository, StringComparison.OrdinalIgnoreCase)) return (true, gitlink);
                    if (gitlink is not null)
                    {
                        // The next level reads this submodule's mirror at that commit: have it there.
                        await EnsureMirrorAsync(submodule, gitlink, ct);
                        next.Add((submodule, gitlink));
                    }
                }
            }
            level = next;
        }
        return (false, null);
    }

    /// <summary>
    /// Whether a job of <paramref name="jobRepository"/> may check out <paramref name="submodule"/>: a repository of the same
    /// owner, or one matching a <c>Checkout:SubmoduleRepositories</c> glob. Anything a job's commit names in
    /// <c>.gitmodules</c> is otherwise fetched with the control plane's forge credential, which may read far more than
    /// the job's own repository should see.
    /// </summary>
    public bool MaySubmodule(string jobRepository, string submodule)
    {
        var owner = jobRepository.Split('/')[0];
        return submodule.StartsWith(owner + "/", StringComparison.OrdinalIgnoreCase)
            || _options.SubmoduleRepositories.Any(glob => IdentityGlob.Matches(glob, submodule, ignoreCase: true));
    }

    /// <summary>The submodules <paramref name="commitSha"/> of <paramref name="repository"/>'s mirror names, with the commit each gitlink records.</summary>
    private async Task<List<(string Repository, string? Commit)>> SubmodulesAsync(string repository, string commitSha, CancellationToken ct)
    {
        var found = new List<(string, string?)>();
        var mirror = MirrorPath(repository);
        if (!IsRepository(repository) || !IsCommitSha(commitSha) || !Directory.Exists(mirror)) return found;
        var config = await GitCommand.RunAsync(mirror, ["config", "--blob", $"{commitSha}:.gitmodules", .. SubmoduleUrls.ConfigQuery], TimeSpan.FromSeconds(30), ct);
        if (!config.Succeeded) return found;
        foreach (var (_, url, path) in SubmoduleUrls.Parse(config.Output))
        {
            if (url is null || SubmoduleUrls.RepositoryOf(url, repository) is not { } submodule || !IsRepository(submodule)) continue;
            string? gitlink = null;
            if (path is not null && !path.StartsWith('-'))
            {
                var tree = await GitCommand.RunAsync(mirror, ["rev-parse", "--verify", "--quiet", $"{commitSha}:{path}"], TimeSpan.FromSeconds(30), ct);
                if (tree.Succeeded && IsCommitSha(tree.Output.Trim())) gitlink = tree.Output.Trim();
            }
            found.Add((submodule, gitlink));
        }
        return found;
    }

    private static CommitVerification Verified(string? tip) => new(true, null, "verified", tip);

    private async Task<CommitVerification> CheckAsync(string repository, string mirror, string gitRef, string commitSha, CancellationToken ct)
    {
        if (!await HasCommitAsync(mirror, commitSha, ct))
        {
            return CommitVerification.Refused("commitSha", $"commitSha {commitSha} does not exist in repository {repository} at the forge");
        }
        if (!_options.VerifyRef) return Verified(null);
        var tip = await GitCommand.RunAsync(mirror, ["rev-parse", "--verify", "--quiet", gitRef + "^{commit}"], TimeSpan.FromSeconds(30), ct);
        if (!tip.Succeeded)
        {
            return CommitVerification.Refused("ref", $"ref {gitRef} does not exist in repository {repository} at the forge");
        }
        var tipSha = tip.Output.Trim();
        var ancestor = await GitCommand.RunAsync(mirror, ["merge-base", "--is-ancestor", commitSha, tipSha], TimeSpan.FromMinutes(1), ct);
        return ancestor.ExitCode switch
        {
            0 => Verified(tipSha),
            1 => CommitVerification.Refused("commitSha", $"commitSha {commitSha} is not on ref {gitRef} of {repository}: it is not reachable from the ref's tip at the forge ({tipSha})", tipSha),
            _ => throw new MirrorFetchException($"could not compare {commitSha} with {gitRef}: {LastLine(ancestor.Error)}"),
        };
    }

    private static async Task<bool> HasCommitAsync(string mirror, string commitSha, CancellationToken ct) =>
        (await GitCommand.RunAsync(mirror, ["cat-file", "-e", commitSha + "^{commit}"], TimeSpan.FromSeconds(30), ct)).Succeeded;

    private Task? JoinRunning(string repository, string? extraRef)
    {
        lock (_states)
        {
            return _states.TryGetValue(repository.ToLowerInvariant(), out var state) && state.Running is { } running
                && (extraRef is null || running.Refs.Contains(extraRef))
                ? running.Done.Task
                : null;
        }
    }

    /// <summary>A fetch that starts now, or (one is running) right after the running one, together with everyone else who waits for it.</summary>
    private Task FetchNextAsync(string repository, string? extraRef)
    {
        var key = repository.ToLowerInvariant();
        lock (_states)
        {
            if (!_states.TryGetValue(key, out var state)) _states[key] = state = new MirrorState();
            if (state.Running is null)
            {
                state.Running = new PendingFetch();
                if (extraRef is not null) state.Running.Refs.Add(extraRef);
                _ = RunAsync(repository, key, state, state.Running);
                return state.Running.Done.Task;
            }
            state.Next ??= new PendingFetch();
            if (extraRef is not null) state.Next.Refs.Add(extraRef);
            return state.Next.Done.Task;
        }
    }

    private async Task RunAsync(string repository, string key, MirrorState state, PendingFetch fetch)
    {
        try
        {
            await FetchAsync(repository, [.. fetch.Refs]);
            fetch.Done.TrySetResult();
        }
        catch (Exception ex)
        {
            fetch.Done.TrySetException(ex is MirrorFetchException ? ex : new MirrorFetchException($"fetching {repository} failed: {ex.Message}"));
        }
        finally
        {
            lock (_states)
            {
                state.Running = state.Next;
                state.Next = null;
                if (state.Running is { } next) _ = RunAsync(repository, key, state, next);
                else if (state.Next is null) _states.Remove(key);
            }
        }
    }

    private async Task FetchAsync(string repository, IReadOnlyList<string> extraRefs)
    {
        var mirror = MirrorPath(repository);
        await InitAsync(mirror);
        var url = ForgeUrl(repository);
        var config = new List<KeyValuePair<string, string>>();
        using var secret = await _credentials.GetAsync(repository, url, CancellationToken.None);
        if (secret is not null) config.AddRange(secret.GitConfig());
        List<string> args = ["fetch", "--prune", "--no-write-fetch-head", "--quiet", "--no-auto-gc", url, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];
        args.AddRange(extraRefs.Select(r => $"+{r}:{r}"));
        Interlocked.Increment(ref _fetchCount);
        Fetches.Add(1);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        GitResult result;
        try
        {
            result = await GitCommand.RunAsync(mirror, args, _options.FetchTimeout, CancellationToken.None, config);
        }
        catch (TimeoutException)
        {
            throw new MirrorFetchException($"fetching {repository} from {SafeUrl(url)} did not finish within {_options.FetchTimeout}");
        }
        if (!result.Succeeded)
        {
            var why = Scrub(LastLine(result.Error), secret);
            _logger.LogWarning("Fetching {Repository} from {Url} failed: {Error}", repository, SafeUrl(url), why);
            throw new MirrorFetchException($"fetching {repository} from {SafeUrl(url)} failed: {why}");
        }
        File.WriteAllText(Path.Combine(mirror, LastFetchFile), DateTimeOffset.UtcNow.ToString("O"));
        _logger.LogInformation("Fetched {Repository} into its mirror in {Ms} ms", repository, (long)System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    /// <summary>Marks when a mirror was last fetched (the maintenance's least-recently-used order).</summary>
    public const string LastFetchFile = "eci-last-fetch";

    private static async Task InitAsync(string mirror)
    {
        if (Directory.Exists(Path.Combine(mirror, "objects"))) return;
        Directory.CreateDirectory(mirror);
        var init = await GitCommand.RunAsync(null, ["init", "--bare", "--quiet", mirror], TimeSpan.FromSeconds(30), CancellationToken.None);
        if (!init.Succeeded) throw new MirrorFetchException($"could not create the mirror: {LastLine(init.Error)}");
        // Served to runners by upload-pack only; gc is the maintenance's, not a fetch's.
        foreach (var (key, value) in ((string, string)[])[("gc.auto", "0"), ("core.logAllRefUpdates", "false"), ("uploadpack.allowAnySHA1InWant", "true"),
                     ("uploadpack.allowFilter", "true"), ("http.receivepack", "false"), ("receive.denyCurrentBranch", "refuse")])
        {
            await GitCommand.RunAsync(mirror, ["config", key, value], TimeSpan.FromSeconds(30), CancellationToken.None);
        }
    }

    /// <summary>The URL without any user info (a template may carry a user name).</summary>
    private static string SafeUrl(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && !string.IsNullOrEmpty(uri.UserInfo) ? url.Replace(uri.UserInfo + "@", "", StringComparison.Ordinal) : url;

    private static string Scrub(string text, ForgeCredential? secret) =>
        secret is null ? text : secret.Redact(text);

    /// <summary>
    /// git's reason: its first <c>fatal:</c> line with the line before it (often the cause, e.g. ssh's "Host key
    /// verification failed."), else its last line (git's advice after a fatal line says nothing about this failure).
    /// </summary>
    private static string LastLine(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var fatal = Array.FindIndex(lines, l => l.StartsWith("fatal:", StringComparison.Ordinal));
        var line = lines.Length == 0 ? "git gave no reason"
            : fatal > 0 ? $"{lines[fatal - 1]} ({lines[fatal]})"
            : fatal == 0 ? lines[0]
            : lines[^1];
        return line.Length > 300 ? line[..300] : line;
    }

    private static string DefaultRoot()
    {
        var data = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData);
        return Path.Combine(string.IsNullOrEmpty(data) ? Path.GetTempPath() : data, "ephemeralci", "git-mirrors");
    }

    private sealed class MirrorState
    {
        public PendingFetch? Running;
        public PendingFetch? Next;
    }

    private sealed class PendingFetch
    {
        public readonly HashSet<string> Refs = new(StringComparer.Ordinal);
        public readonly TaskCompletionSource Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    [GeneratedRegex("^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$", RegexOptions.CultureInvariant)]
    private static partial Regex RepositoryPattern();

    [GeneratedRegex("^refs/(heads/[A-Za-z0-9_./+-]+|tags/[A-Za-z0-9_./+-]+|pull/[0-9]{1,10}/(merge|head)|merge-requests/[0-9]{1,10}/(head|merge))$", RegexOptions.CultureInvariant)]
    private static partial Regex ClaimableRef();

    [GeneratedRegex("^([0-9a-f]{40}|[0-9a-f]{64})$", RegexOptions.CultureInvariant)]
    private static partial Regex CommitShaPattern();
}
