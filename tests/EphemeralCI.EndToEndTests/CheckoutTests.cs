using System.Net.Http.Json;
using EphemeralCI.IntegrationTests.Infrastructure;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// The all-in-one server with checkout on, against a test forge (real <c>git daemon</c> on loopback) that only the
/// control plane is told about: the runner's network reaches nothing but the control plane's sockets.
/// </summary>
public sealed class CheckoutServerFixture : ServerFixture, IAsyncLifetime
{
    public const string ForgeToken = "forge-deploy-token-0b7e61d2c4";

    public TestForge Forge { get; private set; } = null!;

    /// <summary>The same repositories over HTTP with basic auth and an LFS server, for repositories <c>lfs/*</c>.</summary>
    public TokenForge HttpForge { get; private set; } = null!;

    async Task IAsyncLifetime.InitializeAsync()
    {
        Forge = await TestForge.StartAsync();
        HttpForge = await TokenForge.StartAsync(Forge, ForgeToken);
        // Submodules of other owners need the operator's leave: tools/* is given it (the nested-submodule test).
        ExtraArguments.Add("--Checkout:SubmoduleRepositories:0=tools/*");
        ExtraArguments.Add("--Checkout:Repositories:0:Match=lfs/*");
        ExtraArguments.Add($"--Checkout:Repositories:0:Url={HttpForge.UrlTemplate}");
        ExtraArguments.Add("--Checkout:Enabled=true");
        ExtraArguments.Add($"--Checkout:UrlTemplate={Forge.UrlTemplate}");
        ExtraArguments.Add($"--Checkout:Token={ForgeToken}");
        ExtraArguments.Add("--Checkout:FetchTimeout=00:00:30");
        await InitializeAsync();
    }

    async Task IAsyncLifetime.DisposeAsync()
    {
        await DisposeAsync();
        await HttpForge.DisposeAsync();
        await Forge.DisposeAsync();
    }
}

public sealed class CheckoutTests(CheckoutServerFixture fx) : IClassFixture<CheckoutServerFixture>
{
    private static object Job(string repository, string gitRef, string commit, string run, object? checkout = null) => new
    {
        name = "checkout",
        repository,
        @ref = gitRef,
        commitSha = commit,
        runnerTemplate = "default",
        checkout,
        steps = new[] { new { name = "look", run } },
    };

    private async Task<(string Status, string? Reason, string Log)> RunAsync(object job)
    {
        var id = await fx.Intake.SubmitAsync(job);
        var done = await fx.Intake.WaitForTerminalAsync(id, TimeSpan.FromMinutes(2));
        var log = await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/logs");
        var reason = done.TryGetProperty("statusReason", out var r) ? r.GetString() : null;
        var events = await fx.Intake.EventTypesAsync(id);
        // A job that had a runner ends with a valid attestation (one refused before its runner existed has none).
        if (events.Contains("runner.started")) await fx.WaitForVerifiedRunnerEndAsync(id);
        return (done.GetProperty("status").GetString()!, reason, log + "\n" + string.Join(",", events));
    }

    [Fact]
    public async Task A_job_builds_its_commit_on_main_checked_out_from_the_mirror_at_depth_1_or_in_full()
    {
        var repo = "acme/e2e-" + Guid.NewGuid().ToString("N")[..6];
        fx.Forge.CreateRepository(repo, new Dictionary<string, string> { ["hello.sh"] = "echo built-from-checkout\n" });
        fx.Forge.Commit(repo, "main", new Dictionary<string, string> { ["b.txt"] = "b" }, "second");
        var head = fx.Forge.Commit(repo, "main", new Dictionary<string, string> { ["c.txt"] = "c" }, "third commit subject");

        var shallow = await RunAsync(Job(repo, "refs/heads/main", head,
            "bash hello.sh; echo HEAD=$(git rev-parse HEAD); echo COUNT=$(git rev-list --count HEAD); git log --format=%s -1; echo BRANCH=$(git rev-parse --abbrev-ref HEAD)"));
        Assert.True(shallow.Status == "succeeded", shallow.Log);
        Assert.Contains("built-from-checkout", shallow.Log);
        Assert.Contains($"HEAD={head}", shallow.Log);
        Assert.Contains("COUNT=1", shallow.Log);
        Assert.Contains("third commit subject", shallow.Log);
        Assert.Contains("BRANCH=main", shallow.Log);
        Assert.Contains("==> checkout:", shallow.Log);

        var full = await RunAsync(Job(repo, "refs/heads/main", head, "cd sub/dir && test -f b.txt && echo COUNT=$(git rev-list --count HEAD)", new { depth = 0, path = "sub/dir" }));
        Assert.True(full.Status == "succeeded", full.Log);
        Assert.Contains("COUNT=3", full.Log);
    }

    [Fact]
    public async Task Rerun_with_a_shell_has_the_jobs_checkout_and_env_but_never_its_masked_env()
    {
        const string Jit = "jit-config-never-in-a-shell-4f1c";
        var repo = "acme/e2e-" + Guid.NewGuid().ToString("N")[..6];
        var head = fx.Forge.CreateRepository(repo, new Dictionary<string, string> { ["marker.txt"] = "from-the-checkout\n" });
        var failed = await fx.Intake.SubmitAsync(new
        {
            name = "fails", repository = repo, @ref = "refs/heads/main", commitSha = head, runnerTemplate = "default",
            env = new Dictionary<string, string> { ["PLAIN_VAR"] = "plain-value", ["RUNNER_JIT"] = Jit },
            maskedEnv = new[] { "RUNNER_JIT" },
            steps = new[] { new { name = "fail", run = "exit 1" } },
        });
        Assert.Equal("failed", (await fx.Intake.WaitForTerminalAsync(failed, TimeSpan.FromMinutes(2))).GetProperty("status").GetString());

        // What eci jobs rerun ID --shell asks for.
        using var opened = await fx.Intake.PostAsJsonAsync($"/api/v1/jobs/{failed}/shell", new { idleTimeoutSeconds = 60 });
        var body = await opened.Content.ReadAsStringAsync();
        Assert.True(opened.StatusCode == System.Net.HttpStatusCode.Created, body);
        var shell = System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("id").GetGuid();

        using var term = await Term.ConnectAsync(fx, shell, 100, 30);
        await term.TypeAsync("echo \"plain=$PLAIN_VAR jit=${RUNNER_JIT-absent} head=$(git rev-parse HEAD) $(cat marker.txt)\"; env | grep -c jit-config-never\r");
        await term.WaitForAsync($"plain=plain-value jit=absent head={head} from-the-checkout");
        await term.WaitForAsync("\r\n0\r\n");
        await term.TypeAsync("exit 0\r");
        Assert.Equal(0, await term.ExitCodeAsync());
        Assert.DoesNotContain(Jit, term.Output);
        Assert.DoesNotContain(Jit, await fx.Intake.GetStringAsync($"/api/v1/jobs/{shell}/logs"));
    }

    [Fact]
    public async Task A_feature_branch_commit_claimed_as_main_is_refused_before_a_runner_exists()
    {
        var repo = "acme/e2e-" + Guid.NewGuid().ToString("N")[..6];
        fx.Forge.CreateRepository(repo);
        var feature = fx.Forge.Commit(repo, "feature", new Dictionary<string, string> { ["x.txt"] = "x" }, "not on main");

        var refused = await RunAsync(Job(repo, "refs/heads/main", feature, "echo should-never-run"));
        Assert.Equal("failed", refused.Status);
        Assert.NotNull(refused.Reason);
        Assert.Contains("checkout refused", refused.Reason);
        Assert.Contains("commitSha", refused.Reason);
        Assert.Contains("refs/heads/main", refused.Reason);
        Assert.DoesNotContain("runner.started", refused.Log);
        Assert.DoesNotContain("should-never-run", refused.Log);
    }

    [Fact]
    public async Task Tags_and_pull_request_refs_check_out_and_checkout_false_leaves_the_workspace_empty()
    {
        var repo = "acme/e2e-" + Guid.NewGuid().ToString("N")[..6];
        var main = fx.Forge.CreateRepository(repo);
        fx.Forge.Tag(repo, "v2.1", main);
        var pr = fx.Forge.Commit(repo, "contrib", new Dictionary<string, string> { ["pr.txt"] = "from a pull request" }, "pr");
        fx.Forge.SetRef(repo, "refs/pull/12/head", pr);

        var tag = await RunAsync(Job(repo, "refs/tags/v2.1", main, "echo HEAD=$(git rev-parse HEAD); git describe --tags"));
        Assert.True(tag.Status == "succeeded", tag.Log);
        Assert.Contains($"HEAD={main}", tag.Log);
        Assert.Contains("v2.1", tag.Log);

        var pull = await RunAsync(Job(repo, "refs/pull/12/head", pr, "cat pr.txt; echo HEAD=$(git rev-parse HEAD)"));
        Assert.True(pull.Status == "succeeded", pull.Log);
        Assert.Contains("from a pull request", pull.Log);
        Assert.Contains($"HEAD={pr}", pull.Log);

        var none = await RunAsync(Job(repo, "refs/heads/main", main, "echo ENTRIES=$(ls -A | wc -l)", checkout: false));
        Assert.True(none.Status == "succeeded", none.Log);
        Assert.Contains("ENTRIES=0", none.Log);
        Assert.DoesNotContain("==> checkout", none.Log);
    }

    [Fact]
    public async Task A_submodule_comes_from_its_own_mirror()
    {
        var lib = "acme/lib-" + Guid.NewGuid().ToString("N")[..6];
        fx.Forge.CreateRepository(lib, new Dictionary<string, string> { ["lib.txt"] = "library content" });
        var repo = "acme/e2e-" + Guid.NewGuid().ToString("N")[..6];
        fx.Forge.CreateRepository(repo);
        var head = fx.Forge.AddSubmodule(repo, lib, "vendor/lib");

        var job = await RunAsync(Job(repo, "refs/heads/main", head, "cat vendor/lib/lib.txt", new { submodules = true }));
        Assert.True(job.Status == "succeeded", job.Log);
        Assert.Contains("library content", job.Log);
    }

    [Fact]
    public async Task Relative_and_nested_submodules_come_from_their_mirrors_with_submodules_recursive()
    {
        var id = Guid.NewGuid().ToString("N")[..6];
        var (repo, lib, deep) = ($"acme/e2e-{id}", $"acme/lib-{id}", $"tools/deep-{id}");
        fx.Forge.CreateRepository(deep, new Dictionary<string, string> { ["deep.txt"] = "nested submodule content" });
        fx.Forge.CreateRepository(lib, new Dictionary<string, string> { ["lib.txt"] = "library content" });
        // lib names deep relative to itself (another owner), as GitHub resolves ../../tools/deep.git.
        fx.Forge.AddSubmodule(lib, deep, "third_party/deep", url: $"../../{deep}.git");
        fx.Forge.CreateRepository(repo);
        var head = fx.Forge.AddSubmodule(repo, lib, "vendor/lib", url: $"../lib-{id}.git");

        var job = await RunAsync(Job(repo, "refs/heads/main", head,
            "cat vendor/lib/lib.txt vendor/lib/third_party/deep/deep.txt; echo REMOTES=$(git -C vendor/lib remote | wc -l); git config --get-regexp '^submodule[.].*[.]url$'",
            new { submodules = "recursive" }));
        Assert.True(job.Status == "succeeded", job.Log);
        Assert.Contains("library content", job.Log);
        Assert.Contains("nested submodule content", job.Log);
        Assert.Contains("2 submodules", job.Log);
        // No loopback address of the checkout is left in the configuration, and no remote.
        Assert.Contains("REMOTES=0", job.Log);
        Assert.Contains($"submodule.vendor/lib.url ../lib-{id}.git", job.Log);

        // Without recursive, the nested one stays uninitialised.
        var flat = await RunAsync(Job(repo, "refs/heads/main", head, "cat vendor/lib/lib.txt; ls -A vendor/lib/third_party/deep | wc -l", new { submodules = true }));
        Assert.True(flat.Status == "succeeded", flat.Log);
        Assert.Contains("1 submodule)", flat.Log);
        Assert.Contains("library content", flat.Log);
    }

    [Fact]
    public async Task A_gitmodules_naming_another_owners_repository_does_not_open_it_to_the_job()
    {
        // The attacker can push to their repository, not read secret/*: the forge credential of the control plane can.
        var id = Guid.NewGuid().ToString("N")[..6];
        var (repo, secret) = ($"acme/e2e-{id}", $"secret/private-{id}");
        fx.Forge.CreateRepository(secret, new Dictionary<string, string> { ["secret.txt"] = "not for acme" });
        fx.Forge.CreateRepository(repo);
        var head = fx.Forge.AddSubmodule(repo, secret, "vendor/loot");

        var job = await RunAsync(Job(repo, "refs/heads/main", head, "cat vendor/loot/secret.txt", new { submodules = true }));
        Assert.Equal("failed", job.Status);
        Assert.Contains("checkout failed", job.Log);
        Assert.DoesNotContain("not for acme", job.Log);
    }

    [Fact]
    public async Task The_real_actions_cache_run_by_a_job_from_its_checkout_saves_and_a_second_clean_runner_restores()
    {
        // The repository carries the real @actions/cache 4.1.0 (the integration tests' npm fixture), as a JavaScript
        // action's dist/ would; the sandbox has node but no network, so this is the only way the package gets in.
        var repo = "acme/e2e-" + Guid.NewGuid().ToString("N")[..6];
        fx.Forge.CreateRepository(repo);
        var head = fx.Forge.CommitDirectory(repo, "main", ActionsToolkitFixture(), "tools", "vendor @actions/cache");
        var salt = Guid.NewGuid().ToString("N");
        var save = await RunAsync(Job(repo, "refs/heads/main", head, $"""
            test -n "$ACTIONS_RESULTS_URL" && test -n "$ACTIONS_CACHE_URL"
            mkdir -p data && echo "payload {salt}" > data/payload.txt
            CACHE_PATHS=data node tools/save-restore.mjs save deps-{salt}
            """));
        Assert.True(save.Status == "succeeded", save.Log);
        Assert.Matches("RESULT \\{\"id\":[1-9][0-9]*\\}", save.Log);

        var restore = await RunAsync(Job(repo, "refs/heads/main", head, $"""
            test ! -e data
            CACHE_PATHS=data node tools/save-restore.mjs restore deps-nothing deps-{salt}
            cat data/payload.txt
            """));
        Assert.True(restore.Status == "succeeded", restore.Log);
        Assert.Contains($"RESULT {{\"hit\":\"deps-{salt}\"}}", restore.Log);
        Assert.Contains($"payload {salt}", restore.Log);
    }

    private static string ActionsToolkitFixture()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "EphemeralCI.IntegrationTests", "ActionsToolkit");
            if (Directory.Exists(Path.Combine(candidate, "node_modules", "@actions", "cache"))) return candidate;
        }
        throw new InvalidOperationException("tests/EphemeralCI.IntegrationTests/ActionsToolkit/node_modules not found (run npm ci there, as eng/test.sh does)");
    }

    [Fact]
    public async Task Lfs_objects_come_from_the_mirror_fetched_once_from_the_forge_lfs_server()
    {
        var repo = "lfs/e2e-" + Guid.NewGuid().ToString("N")[..6];
        fx.Forge.CreateRepository(repo);
        var blob = System.Security.Cryptography.RandomNumberGenerator.GetBytes(300_000);
        var sha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(blob));
        var head = fx.HttpForge.AddLfsFile(repo, "assets/blob.bin", blob);
        var before = fx.HttpForge.LfsDownloads;
        const string look = "sha256sum assets/blob.bin; echo DIRTY=$(git status --porcelain | wc -l)";

        var mark = fx.OutputMark;
        var first = await RunAsync(Job(repo, "refs/heads/main", head, look, new { lfs = true }));
        Assert.True(first.Status == "succeeded", first.Log + "\nserver:\n" + string.Join("\n", fx.OutputSince(mark).TakeLast(60)));
        Assert.Contains($"{sha}  assets/blob.bin", first.Log);
        Assert.Contains("DIRTY=0", first.Log);
        Assert.Contains(", lfs)", first.Log);
        Assert.Equal(before + 1, fx.HttpForge.LfsDownloads);

        // A second clean runner: the object comes from the mirror, the forge is not asked again.
        var second = await RunAsync(Job(repo, "refs/heads/main", head, look, new { lfs = true }));
        Assert.True(second.Status == "succeeded", second.Log);
        Assert.Contains($"{sha}  assets/blob.bin", second.Log);
        Assert.Equal(before + 1, fx.HttpForge.LfsDownloads);

        // Without lfs the pointer stays.
        var pointer = await RunAsync(Job(repo, "refs/heads/main", head, "cat assets/blob.bin"));
        Assert.True(pointer.Status == "succeeded", pointer.Log);
        Assert.Contains($"oid sha256:{sha}", pointer.Log);
    }

    [Fact]
    public async Task The_forge_credentials_and_the_job_token_never_reach_the_steps()
    {
        var repo = "acme/e2e-" + Guid.NewGuid().ToString("N")[..6];
        var head = fx.Forge.CreateRepository(repo);
        // Everything a step can read: its environment, the workspace (with .git), /tmp, HOME, every process's environment.
        // The patterns go into a file, split in the script, so neither the script nor grep's command line contains them.
        var token = CheckoutServerFixture.ForgeToken;
        var job = await RunAsync(Job(repo, "refs/heads/main", head, $$"""
            pat=$(mktemp)
            a='{{token[..10]}}'; b='{{token[10..]}}'; printf '%s%s\n' "$a" "$b" > "$pat"
            a='Bear'; b='er '; printf '%s%s\n' "$a" "$b" >> "$pat"
            a='x-access'; b='-token'; printf '%s%s\n' "$a" "$b" >> "$pat"
            found=0
            for f in $(grep -rlsaF -f "$pat" . .git /tmp "$HOME" /proc/*/environ /proc/*/cmdline 2>/dev/null); do
              [ "$f" = "$pat" ] && continue
              echo "LEAK in $f"; found=1
            done
            env | grep -i -e token -e bearer || true
            echo CONFIG:; cat .git/config
            test $found = 0 && echo NO-LEAK
            """));
        Assert.True(job.Status == "succeeded", job.Log);
        Assert.Contains("NO-LEAK", job.Log);
        Assert.DoesNotContain("LEAK in", job.Log);
        Assert.DoesNotContain(CheckoutServerFixture.ForgeToken, job.Log);
        Assert.DoesNotContain(CheckoutServerFixture.ForgeToken, fx.Output);
    }

    [Fact]
    public async Task A_forge_that_is_down_fails_the_job_with_the_reason_before_any_step()
    {
        var repo = "acme/e2e-" + Guid.NewGuid().ToString("N")[..6];
        var head = fx.Forge.CreateRepository(repo);
        // Tests of one class run one at a time, so the shared forge can be down for this one.
        await fx.Forge.StopDaemonAsync();
        (string Status, string? Reason, string Log) down;
        try
        {
            down = await RunAsync(Job(repo, "refs/heads/main", head, "echo should-never-run"));
        }
        finally
        {
            await fx.Forge.StartDaemonAsync();
        }
        Assert.Equal("failed", down.Status);
        Assert.Contains("checkout failed", down.Reason);
        Assert.DoesNotContain("should-never-run", down.Log);
    }
}
