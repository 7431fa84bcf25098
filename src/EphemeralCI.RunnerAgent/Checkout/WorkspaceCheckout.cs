using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Runner;

namespace EphemeralCI.RunnerAgent.Checkout;

/// <summary>What the checkout did, for the job's log (and the job's result when it failed).</summary>
public sealed record CheckoutOutcome(bool Failed, string Message);

/// <summary>
/// Puts the job's commit into the workspace before the first step, from the cache's mirror of the job's repository
/// (git smart HTTP, <c>/git/{owner}/{name}.git</c>) — never from the forge. The runner reaches the cache as its caches do:
/// through the sandbox's cache socket (relayed by this process on a loopback port while the checkout runs) or the cache's
/// URL. git gets the job token as an <c>http.extraHeader</c> in its environment only: it is never on a command line, never
/// in <c>.git/config</c>, and every git process has exited before the first step starts. No remote is left configured.
/// </summary>
public sealed class WorkspaceCheckout(string token, string workspace, string? cacheSocket, string? cacheUrl)
{
    public static WorkspaceCheckout FromEnvironment(string token, string workspace) => new(token, workspace,
        Environment.GetEnvironmentVariable(RunnerEnvironment.CacheSocket) is { Length: > 0 } socket && File.Exists(socket) ? socket : null,
        Environment.GetEnvironmentVariable(RunnerEnvironment.CacheUrl) is { Length: > 0 } url ? url : null);

    /// <summary>How long one git command may take.</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromMinutes(20);

    public async Task<CheckoutOutcome?> RunAsync(RunnerJob job, CancellationToken ct)
    {
        var spec = job.Spec.Checkout ?? CheckoutSpec.Default;
        if (!spec.Enabled) return null;
        if (cacheSocket is null && cacheUrl is null) return new(false, "checkout skipped: this runner has no way to the cache service");
        var repository = job.Spec.Repository ?? "";
        var commit = (job.Spec.CommitSha ?? "").ToLowerInvariant();
        var gitRef = job.Spec.Ref ?? "";

        var started = Stopwatch.GetTimestamp();
        await using var relay = cacheSocket is null ? null : LoopbackSocketRelay.Start(cacheSocket);
        var baseUrl = relay?.Address ?? new Uri(cacheUrl!.EndsWith('/') ? cacheUrl : cacheUrl + "/");
        var repoUrl = new Uri(baseUrl, $"git/{repository}.git").ToString();

        // One plain request first: a cache without mirrors (Checkout:Enabled off) means no checkout, not a failed job.
        var preflight = await PreflightAsync(repoUrl, ct);
        if (preflight is not null) return preflight;

        var target = string.IsNullOrEmpty(spec.Path) ? workspace : Path.Combine(workspace, spec.Path);
        Directory.CreateDirectory(target);
        var auth = new KeyValuePair<string, string>("http.extraHeader", "Authorization: Bearer " + token);
        var depth = spec.Depth ?? CheckoutSpec.DefaultDepth;

        var run = await GitAsync(target, ["init", "--quiet"], [new("init.defaultBranch", "main")], ct);
        if (run is not null) return run;
        List<string> fetch = ["fetch", "--no-tags", "--quiet", "--no-write-fetch-head"];
        if (depth > 0) fetch.Add($"--depth={depth}");
        fetch.AddRange([repoUrl, $"+{commit}:refs/eci/checkout"]);
        if (await GitAsync(target, fetch, [auth], ct) is { } fetchFailed) return fetchFailed;
        List<string> checkout = gitRef.StartsWith("refs/heads/", StringComparison.Ordinal)
            ? ["checkout", "--quiet", "-B", gitRef["refs/heads/".Length..], commit]
            : ["checkout", "--quiet", "--detach", commit];
        if (await GitAsync(target, checkout, [], ct) is { } checkoutFailed) return checkoutFailed;
        if (await GitAsync(target, ["update-ref", "-d", "refs/eci/checkout"], [], ct) is { } cleanupFailed) return cleanupFailed;
        if (gitRef.StartsWith("refs/tags/", StringComparison.Ordinal))
        {
            await GitAsync(target, ["tag", gitRef["refs/tags/".Length..], commit], [], ct);
        }

        var notes = new StringBuilder();
        if (spec.Submodules is "true" or "recursive")
        {
            var fetched = 0;
            if (await SubmodulesAsync(target, repository, spec.Submodules == "recursive", depth, baseUrl, auth, 1, c => fetched += c, ct) is { } submodulesFailed)
            {
                return submodulesFailed;
            }
            notes.Append(fetched == 1 ? ", 1 submodule" : $", {fetched} submodules");
        }
        if (spec.Lfs == true)
        {
            if (await GitAsync(target, ["lfs", "version"], [], ct) is not null)
            {
                notes.Append(", lfs skipped: git-lfs is not installed in this runner");
            }
            else
            {
                // The filters go into .git/config (so `git status` stays clean for the steps); the endpoint and the token
                // only into this command's environment: the cache's LFS batch API for the job's repository.
                if (await GitAsync(target, ["lfs", "install", "--local", "--skip-repo"], [], ct) is { } installFailed) return installFailed;
                List<KeyValuePair<string, string>> lfs = [auth, new("lfs.url", repoUrl + "/info/lfs"), new("lfs.locksverify", "false")];
                // Through the relay the cache cannot know this address: it names its downloads after it.
                if (relay is not null) lfs.Add(new("http.extraHeader", "X-Eci-Lfs-Base: " + baseUrl));
                if (await GitAsync(target, ["lfs", "pull"], lfs, ct) is { } lfsFailed) return lfsFailed;
                notes.Append(", lfs");
            }
        }
        var ms = (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        var into = string.IsNullOrEmpty(spec.Path) ? "the workspace" : spec.Path;
        return new(false, $"checkout: {commit} of {gitRef} into {into} ({(depth == 0 ? "full history" : $"depth {depth}")}{notes}) in {ms} ms");
    }

    private async Task<CheckoutOutcome?> PreflightAsync(string repoUrl, CancellationToken ct)
    {
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromMinutes(11) };
        using var request = new HttpRequestMessage(HttpMethod.Get, repoUrl + "/info/refs?service=git-upload-pack");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            if (response.IsSuccessStatusCode) return null;
            var body = await response.Content.ReadAsStringAsync(ct);
            if (response.StatusCode == HttpStatusCode.NotFound && body.Contains("Checkout:Enabled", StringComparison.Ordinal))
            {
                return new(false, "checkout skipped: the control plane keeps no git mirrors (Checkout:Enabled is off)");
            }
            return new(true, $"checkout failed: the cache answered {(int)response.StatusCode} for the repository's mirror: {Detail(body)}");
        }
        catch (HttpRequestException ex)
        {
            return new(true, $"checkout failed: the cache could not be reached: {ex.Message}");
        }
    }

    /// <summary>How deep <c>submodules: recursive</c> follows submodules of submodules (the cache allows as deep).</summary>
    private const int MaxSubmoduleDepth = 4;

    /// <summary>
    /// Initialises the submodules of the repository checked out in <paramref name="dir"/> (<paramref name="repository"/>), each
    /// from the cache's mirror of the repository its URL names — absolute forge URLs through insteadOf rules, relative ones
    /// (<c>../lib.git</c>, resolved against <paramref name="repository"/> as the forge would) by their configured URL — then,
    /// when <paramref name="recursive"/>, the submodules of each, level by level, since each level's URLs are only known once
    /// the level above is checked out.
    /// </summary>
    private async Task<CheckoutOutcome?> SubmodulesAsync(string dir, string repository, bool recursive, int depth, Uri baseUrl,
        KeyValuePair<string, string> auth, int level, Action<int> counted, CancellationToken ct)
    {
        var (code, output) = await GitOutputAsync(dir, ["config", "--file", ".gitmodules", .. SubmoduleUrls.ConfigQuery], ct);
        if (code != 0) return null;
        var modules = SubmoduleUrls.Parse(output);
        var rewrites = new List<KeyValuePair<string, string>>();
        var relative = new List<GitModule>();
        var children = new List<(string Path, string Repository)>();
        foreach (var module in modules)
        {
            var (name, url, path) = module;
            if (url is null || SubmoduleUrls.RepositoryOf(url, repository) is not { } submodule) continue;
            var mirror = new Uri(baseUrl, $"git/{submodule}.git").ToString();
            if (url.StartsWith('.'))
            {
                // git resolves a relative URL against the superproject's remote, and a checkout has none: give it the mirror's.
                if (await GitAsync(dir, ["submodule", "init", "--quiet", "--", path ?? name], [], ct) is { } initFailed) return initFailed;
                if (await GitAsync(dir, ["config", $"submodule.{name}.url", mirror], [], ct) is { } setFailed) return setFailed;
                relative.Add(module);
            }
            else rewrites.Add(new($"url.{mirror}.insteadOf", url));
            if (path is not null) children.Add((path, submodule));
        }
        List<string> update = ["-c", "protocol.file.allow=never", "submodule", "update", "--init", "--quiet"];
        if (depth > 0) update.Add($"--depth={depth}");
        if (await GitAsync(dir, update, [auth, .. rewrites], ct) is { } updateFailed) return updateFailed;
        foreach (var (name, url, path) in relative)
        {
            // No loopback address of this checkout stays behind: back to the URL .gitmodules gives, and no remote in the
            // submodule (as in the superproject; absolute ones keep their forge URL, which a runner cannot reach anyway).
            await GitAsync(dir, ["config", $"submodule.{name}.url", url!], [], ct);
            await GitAsync(Path.Combine(dir, path ?? name), ["remote", "remove", "origin"], [], ct);
        }
        counted(children.Count);
        if (!recursive || level >= MaxSubmoduleDepth) return null;
        foreach (var (path, submodule) in children)
        {
            var child = Path.Combine(dir, path);
            if (!File.Exists(Path.Combine(child, ".gitmodules"))) continue;
            if (await SubmodulesAsync(child, submodule, recursive, depth, baseUrl, auth, level + 1, counted, ct) is { } failed) return failed;
        }
        return null;
    }

    private static string Detail(string body)
    {
        var marker = "\"detail\":\"";
        var at = body.IndexOf(marker, StringComparison.Ordinal);
        if (at < 0) return body.Length > 200 ? body[..200] : body;
        var end = body.IndexOf('"', at + marker.Length);
        return end < 0 ? body[(at + marker.Length)..] : body[(at + marker.Length)..end];
    }

    private async Task<CheckoutOutcome?> GitAsync(string cwd, IReadOnlyList<string> args, IReadOnlyList<KeyValuePair<string, string>> config, CancellationToken ct)
    {
        var (code, output) = await GitOutputAsync(cwd, args, ct, config);
        if (code == 0) return null;
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var command = args.First(a => !a.StartsWith('-') && !a.Contains('='));
        // git-lfs says which object failed and why before its summary line.
        var last = lines.Length == 0 ? "git gave no reason" : string.Join(" | ", lines.TakeLast(command == "lfs" ? 4 : 1));
        return new(true, $"checkout failed: git {command} exited with {code}: {last.Replace(token, "***", StringComparison.Ordinal)}");
    }

    private async Task<(int Code, string Output)> GitOutputAsync(string cwd, IReadOnlyList<string> args, CancellationToken ct, IReadOnlyList<KeyValuePair<string, string>>? config = null)
    {
        var psi = new ProcessStartInfo("git")
        {
            WorkingDirectory = cwd,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment.Clear();
        psi.Environment["PATH"] = Environment.GetEnvironmentVariable("PATH") is { Length: > 0 } path ? path : AgentEnvironment.DefaultPath;
        psi.Environment["HOME"] = Path.GetTempPath();
        psi.Environment["GIT_CONFIG_NOSYSTEM"] = "1";
        psi.Environment["GIT_CONFIG_GLOBAL"] = "/dev/null";
        psi.Environment["GIT_TERMINAL_PROMPT"] = "0";
        psi.Environment["LC_ALL"] = "C";
        var all = config ?? [];
        for (var i = 0; i < all.Count; i++)
        {
            psi.Environment[$"GIT_CONFIG_KEY_{i}"] = all[i].Key;
            psi.Environment[$"GIT_CONFIG_VALUE_{i}"] = all[i].Value;
        }
        psi.Environment["GIT_CONFIG_COUNT"] = all.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("git did not start");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(CommandTimeout);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            await process.WaitForExitAsync(CancellationToken.None);
            ct.ThrowIfCancellationRequested();
            return (124, $"timed out after {CommandTimeout}");
        }
        return (process.ExitCode, await stdout + await stderr);
    }
}
