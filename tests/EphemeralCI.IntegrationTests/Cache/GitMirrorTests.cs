using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using EphemeralCI.Cache.Git;
using EphemeralCI.IntegrationTests.Infrastructure;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// The cache's git mirrors against a test forge (real <c>git daemon</c> on loopback): the commit check the provisioner
/// asks for before a runner exists, the smart-HTTP upload-pack a runner clones from, and what a job cannot do to a mirror.
/// </summary>
public sealed class GitMirrorTests : IAsyncLifetime
{
    private const string ForgeToken = "forge-token-never-in-a-runner-5f3a9c";
    private TestForge _forge = null!;
    private CacheTestApp _cache = null!;
    private string _mirrorRoot = null!;

    public async Task InitializeAsync()
    {
        _forge = await TestForge.StartAsync();
        _mirrorRoot = Path.Combine(Path.GetTempPath(), "eci-it-mirrors-" + Guid.NewGuid().ToString("N")[..8]);
        _cache = await CacheTestApp.StartAsync(1 << 20, fileSystem: true, kestrel: true, settings: new Dictionary<string, string?>
        {
            ["Checkout:Enabled"] = "true",
            ["Checkout:UrlTemplate"] = _forge.UrlTemplate,
            ["Checkout:MirrorRoot"] = _mirrorRoot,
            ["Checkout:Token"] = ForgeToken,
            ["Checkout:FetchTimeout"] = "00:00:30",
        });
    }

    public async Task DisposeAsync()
    {
        await _cache.DisposeAsync();
        await _forge.DisposeAsync();
        if (Directory.Exists(_mirrorRoot)) Directory.Delete(_mirrorRoot, recursive: true);
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> VerifyAsync(string repository, string gitRef, string commit)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "git/verify") { Content = JsonContent.Create(new { commitSha = commit }) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _cache.Mint(repository, gitRef: gitRef));
        using var response = await _cache.Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    [Fact]
    public async Task A_commit_on_main_is_verified_and_a_feature_branch_commit_claimed_as_main_is_refused_naming_commitSha()
    {
        var main = _forge.CreateRepository("acme/app");
        var feature = _forge.Commit("acme/app", "feature", new Dictionary<string, string> { ["f.txt"] = "feature" }, "feature work");

        var ok = await VerifyAsync("acme/app", "refs/heads/main", main);
        Assert.Equal(HttpStatusCode.OK, ok.Status);
        Assert.Equal(main, ok.Body.GetProperty("refTip").GetString());

        var refused = await VerifyAsync("acme/app", "refs/heads/main", feature);
        Assert.Equal(HttpStatusCode.Conflict, refused.Status);
        Assert.Equal("commitSha", refused.Body.GetProperty("field").GetString());
        Assert.Contains("refs/heads/main", refused.Body.GetProperty("detail").GetString());

        // The same commit is fine on the ref it really is on.
        Assert.Equal(HttpStatusCode.OK, (await VerifyAsync("acme/app", "refs/heads/feature", feature)).Status);

        var unknown = await VerifyAsync("acme/app", "refs/heads/main", new string('a', 40));
        Assert.Equal(HttpStatusCode.Conflict, unknown.Status);
        Assert.Contains("does not exist", unknown.Body.GetProperty("detail").GetString());

        var noRef = await VerifyAsync("acme/app", "refs/heads/nope", main);
        Assert.Equal(HttpStatusCode.Conflict, noRef.Status);
        Assert.Equal("ref", noRef.Body.GetProperty("field").GetString());
    }

    [Fact]
    public async Task Tags_and_pull_request_refs_are_verified()
    {
        var main = _forge.CreateRepository("acme/tags");
        _forge.Tag("acme/tags", "v1.0", main);
        var pr = _forge.Commit("acme/tags", "contrib", new Dictionary<string, string> { ["pr.txt"] = "pr" }, "pull request head");
        _forge.SetRef("acme/tags", "refs/pull/7/head", pr);
        _forge.SetRef("acme/tags", "refs/merge-requests/3/head", pr);

        Assert.Equal(HttpStatusCode.OK, (await VerifyAsync("acme/tags", "refs/tags/v1.0", main)).Status);
        Assert.Equal(HttpStatusCode.OK, (await VerifyAsync("acme/tags", "refs/pull/7/head", pr)).Status);
        Assert.Equal(HttpStatusCode.OK, (await VerifyAsync("acme/tags", "refs/merge-requests/3/head", pr)).Status);
        // A pull request's commit is not main's.
        Assert.Equal(HttpStatusCode.Conflict, (await VerifyAsync("acme/tags", "refs/heads/main", pr)).Status);
        Assert.Equal(HttpStatusCode.Conflict, (await VerifyAsync("acme/tags", "refs/tags/v1.0", pr)).Status);
    }

    [Fact]
    public async Task A_forge_that_is_down_gives_a_reason_and_no_verification()
    {
        var main = _forge.CreateRepository("acme/down");
        await _forge.StopDaemonAsync();
        var down = await VerifyAsync("acme/down", "refs/heads/main", main);
        Assert.Equal(HttpStatusCode.BadGateway, down.Status);
        var detail = down.Body.GetProperty("detail").GetString()!;
        Assert.Contains("fetching acme/down", detail);
        Assert.DoesNotContain(ForgeToken, detail);
    }

    [Fact]
    public async Task Concurrent_jobs_of_one_repository_share_one_fetch()
    {
        var main = _forge.CreateRepository("acme/shared", Enumerable.Range(0, 300).ToDictionary(i => $"src/f{i}.txt", i => new string('x', 2000) + i));
        var mirrors = _cache.Service<GitMirrors>();
        Task<(HttpStatusCode Status, JsonElement Body)>[] requests;
        using (_forge.HoldFetches())
        {
            // The forge is slow to answer the first fetch, so the other three jobs ask while it runs (under CI load a
            // request could otherwise arrive after it ended, and rightly fetch again to see the ref's tip now).
            requests = Enumerable.Range(0, 4).Select(_ => VerifyAsync("acme/shared", "refs/heads/main", main)).ToArray();
            await Task.Delay(TimeSpan.FromSeconds(3));
        }
        var results = await Task.WhenAll(requests);
        Assert.All(results, r => Assert.Equal(HttpStatusCode.OK, r.Status));
        // Every job asked while the first fetch ran, and that fetch had the commit: the forge served it once.
        Assert.Equal(1, _forge.UploadPacks("acme/shared"));
        Assert.Equal(1, mirrors.FetchCount);

        // A commit pushed later is still seen: the next job fetches again.
        var next = _forge.Commit("acme/shared", "main", new Dictionary<string, string> { ["next.txt"] = "n" }, "next");
        Assert.Equal(HttpStatusCode.OK, (await VerifyAsync("acme/shared", "refs/heads/main", next)).Status);
        Assert.Equal(2, _forge.UploadPacks("acme/shared"));
    }

    [Fact]
    public async Task A_runner_clones_its_repository_shallow_or_full_from_the_mirror_and_no_other()
    {
        _forge.CreateRepository("acme/clone");
        _forge.Commit("acme/clone", "main", new Dictionary<string, string> { ["two.txt"] = "2" }, "second");
        var head = _forge.Commit("acme/clone", "main", new Dictionary<string, string> { ["three.txt"] = "3" }, "third");
        _forge.CreateRepository("acme/other");
        Assert.Equal(HttpStatusCode.OK, (await VerifyAsync("acme/clone", "refs/heads/main", head)).Status);
        var token = _cache.Mint("acme/clone");

        var shallow = Clone("acme/clone", token, head, depth: 1);
        Assert.Equal(head, TestForge.Git(shallow, "rev-parse", "HEAD").Trim());
        Assert.Equal("1", TestForge.Git(shallow, "rev-list", "--count", "HEAD").Trim());
        Assert.True(File.Exists(Path.Combine(shallow, "three.txt")));

        var full = Clone("acme/clone", token, head, depth: 0);
        Assert.Equal("3", TestForge.Git(full, "rev-list", "--count", "HEAD").Trim());

        // The job's token opens its own repository only.
        var other = Assert.Throws<InvalidOperationException>(() => Clone("acme/other", token, head, depth: 1));
        Assert.Contains("403", other.Message);
        // No token, no clone.
        Assert.Throws<InvalidOperationException>(() => Clone("acme/clone", null, head, depth: 1));
    }

    [Fact]
    public async Task The_second_runner_asking_for_a_commit_gets_the_stored_pack_and_a_new_commit_gets_a_new_one()
    {
        _forge.CreateRepository("acme/packs", Enumerable.Range(0, 50).ToDictionary(i => $"f{i}.txt", i => $"file {i} " + new string('x', 500)));
        var head = _forge.Commit("acme/packs", "main", new Dictionary<string, string> { ["two.txt"] = "2" }, "second");
        Assert.Equal(HttpStatusCode.OK, (await VerifyAsync("acme/packs", "refs/heads/main", head)).Status);
        var token = _cache.Mint("acme/packs");
        var packs = _cache.Service<PackCache>();
        string[] Stored() => Directory.Exists(packs.Directory) ? Directory.GetFiles(packs.Directory, "*.pack").Where(f => !Path.GetFileName(f).StartsWith('.')).Order().ToArray() : [];
        var before = Stored();

        var first = Clone("acme/packs", token, head, depth: 1);
        var afterFirst = Stored();
        var made = Assert.Single(afterFirst.Except(before));
        var servedAt = File.GetLastWriteTimeUtc(made);

        // Same commit, same depth: the stored pack is served (touched, none added) and the checkout is the same.
        await Task.Delay(1100);
        var second = Clone("acme/packs", token, head, depth: 1);
        Assert.Equal(afterFirst, Stored());
        Assert.True(File.GetLastWriteTimeUtc(made) > servedAt, "the stored pack was not served");
        Assert.Equal(head, TestForge.Git(second, "rev-parse", "HEAD").Trim());
        Assert.Equal(TestForge.Git(first, "ls-files", "-s"), TestForge.Git(second, "ls-files", "-s"));
        TestForge.Git(second, "fsck", "--no-progress");

        // A new commit is a different request: its own pack. Nothing is ever reused for another input.
        var next = _forge.Commit("acme/packs", "main", new Dictionary<string, string> { ["three.txt"] = "3" }, "third");
        Assert.Equal(HttpStatusCode.OK, (await VerifyAsync("acme/packs", "refs/heads/main", next)).Status);
        var third = Clone("acme/packs", _cache.Mint("acme/packs"), next, depth: 1);
        Assert.True(File.Exists(Path.Combine(third, "three.txt")));
        Assert.Equal(afterFirst.Length + 1, Stored().Length);

        // The budget holds: at 1 byte every stored pack goes.
        Assert.True(new PackCache(_cache.Service<GitMirrors>(), Microsoft.Extensions.Options.Options.Create(new CheckoutOptions { PackCacheBytes = 1 }), TimeProvider.System).Trim() > 0);
        Assert.Empty(Stored());
    }

    [Fact]
    public async Task The_lfs_batch_api_serves_downloads_of_the_jobs_repository_only_and_names_what_is_wrong()
    {
        var head = _forge.CreateRepository("acme/lfs-rules");
        Assert.Equal(HttpStatusCode.OK, (await VerifyAsync("acme/lfs-rules", "refs/heads/main", head)).Status);
        async Task<(HttpStatusCode Status, string Body)> BatchAsync(string repository, object body, string? token = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"git/{repository}.git/info/lfs/objects/batch") { Content = JsonContent.Create(body) };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token ?? _cache.Mint("acme/lfs-rules"));
            using var response = await _cache.Client.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        var oid = new string('c', 64);
        var upload = await BatchAsync("acme/lfs-rules", new { operation = "upload", objects = new[] { new { oid, size = 1 } } });
        Assert.Equal(HttpStatusCode.Forbidden, upload.Status);
        var bad = await BatchAsync("acme/lfs-rules", new { operation = "download", objects = new[] { new { oid = "../../etc/passwd", size = 1 } } });
        Assert.Equal(HttpStatusCode.BadRequest, bad.Status);
        Assert.Contains("objects", bad.Body);
        var other = await BatchAsync("acme/other-repo", new { operation = "download", objects = new[] { new { oid, size = 1 } } });
        Assert.Equal(HttpStatusCode.Forbidden, other.Status);
        // The test forge (git daemon) has no LFS server: the object is reported missing, per object, not as a failed request.
        var missing = await BatchAsync("acme/lfs-rules", new { operation = "download", objects = new[] { new { oid, size = 1 } } });
        Assert.Equal(HttpStatusCode.OK, missing.Status);
        Assert.Contains("HTTPS forges only", missing.Body);
    }

    [Fact]
    public async Task A_job_cannot_push_into_or_change_the_mirror_and_the_forge_token_is_never_in_it()
    {
        var main = _forge.CreateRepository("acme/locked");
        Assert.Equal(HttpStatusCode.OK, (await VerifyAsync("acme/locked", "refs/heads/main", main)).Status);
        var token = _cache.Mint("acme/locked");
        var mirror = _cache.Service<GitMirrors>().MirrorPath("acme/locked");
        var before = TestForge.Git(mirror, "for-each-ref");

        var work = Clone("acme/locked", token, main, depth: 0);
        TestForge.Git(work, "commit", "--allow-empty", "--quiet", "-m", "evil");
        var push = Assert.Throws<InvalidOperationException>(() => TestForge.Git(work, "-c", $"http.extraHeader=Authorization: Bearer {token}",
            "push", new Uri(_cache.BaseAddress, "git/acme/locked.git").ToString(), "HEAD:refs/heads/main"));
        Assert.Contains("403", push.Message);
        using (var request = new HttpRequestMessage(HttpMethod.Post, "git/acme/locked.git/git-receive-pack"))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await _cache.Client.SendAsync(request);
            Assert.True(response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.MethodNotAllowed, $"receive-pack answered {(int)response.StatusCode}");
        }
        Assert.Equal(before, TestForge.Git(mirror, "for-each-ref"));

        foreach (var file in Directory.EnumerateFiles(_mirrorRoot, "*", SearchOption.AllDirectories))
        {
            Assert.DoesNotContain(ForgeToken, File.ReadAllText(file));
        }
    }

    /// <summary>What the agent does: init, fetch the commit with the job token as an environment-only header, check out.</summary>
    private string Clone(string repository, string? token, string commit, int depth)
    {
        var dir = Path.Combine(Path.GetTempPath(), "eci-it-clone-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        TestForge.Git(dir, "init", "--quiet");
        List<string> args = token is null ? [] : ["-c", $"http.extraHeader=Authorization: Bearer {token}"];
        args.AddRange(["fetch", "--quiet", "--no-tags"]);
        if (depth > 0) args.Add($"--depth={depth}");
        args.AddRange([new Uri(_cache.BaseAddress, $"git/{repository}.git").ToString(), $"+{commit}:refs/eci/checkout"]);
        TestForge.Git(dir, [.. args]);
        TestForge.Git(dir, "checkout", "--quiet", "--detach", commit);
        return dir;
    }
}
