using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// Clean never means slow: a job saves its dependency folder after it succeeds, and the next job —
/// in a brand-new runner with an empty workspace — restores it before its first step.
/// </summary>
public abstract class CacheTests(IEphemeralCISystem fx)
{
    [Fact]
    public async Task A_second_job_in_a_clean_runner_restores_what_the_first_one_saved()
    {
        var key = "deps-" + Guid.NewGuid().ToString("N")[..12];
        object Job(string name, string run) => new
        {
            name,
            repository = "acme/widgets",
            @ref = "refs/heads/main",
            commitSha = "0123456789abcdef0123456789abcdef01234567",
            runnerTemplate = "default",
            caches = new[] { new { key, restoreKeys = new[] { "deps-" }, paths = new[] { "deps" } } },
            steps = new[] { new { name = "build", run } },
        };

        var cold = await fx.Intake.SubmitAsync(Job("cold", "test ! -e deps && mkdir deps && head -c 300000 /dev/urandom | base64 > deps/lib.txt && sha256sum deps/lib.txt | tee deps.sum"));
        var coldJob = await fx.Intake.WaitForTerminalAsync(cold);
        var coldLog = await fx.Intake.GetStringAsync($"/api/v1/jobs/{cold}/logs");
        Assert.True(coldJob.GetProperty("status").GetString() == "succeeded", $"cold job: {coldJob}\n{coldLog}");
        Assert.Contains($"cache restore '{key}': miss", coldLog);
        Assert.Contains($"cache save '{key}': saved", coldLog);
        Assert.Contains("cache.restore", await fx.Intake.EventTypesAsync(cold));
        Assert.Contains("cache.save", await fx.Intake.EventTypesAsync(cold));
        var checksum = coldLog.Split('\n').First(l => l.Contains("deps/lib.txt", StringComparison.Ordinal) && l.Length > 64)[..64];

        var warm = await fx.Intake.SubmitAsync(Job("warm", "sha256sum deps/lib.txt"));
        var warmJob = await fx.Intake.WaitForTerminalAsync(warm);
        var warmLog = await fx.Intake.GetStringAsync($"/api/v1/jobs/{warm}/logs");
        Assert.True(warmJob.GetProperty("status").GetString() == "succeeded", $"warm job: {warmJob}\n{warmLog}");
        Assert.Contains($"cache restore '{key}': hit", warmLog);
        Assert.Contains(checksum, warmLog.Split("==> step", 2)[1]); // the very bytes, in a new runner

        // The attestation says which cache the runner started from: the entry, its scope and its bytes' digest —
        // as the cache recorded serving it to that job, not as the runner reported it.
        var warmCaches = (await fx.WaitForVerifiedRunnerEndAsync(warm)).Predicate.Caches;
        var restored = Assert.Single(warmCaches.Restored);
        Assert.Equal((key, "hit", "acme/widgets@refs/heads/main", "cache"), (restored.Key, restored.Result, restored.Scope, warmCaches.RecordedBy));
        var coldCaches = (await fx.WaitForVerifiedRunnerEndAsync(cold)).Predicate.Caches;
        Assert.Equal((key, "miss"), (Assert.Single(coldCaches.Restored).Key, coldCaches.Restored[0].Result));
        var saved = Assert.Single(coldCaches.Saved);
        Assert.Equal(saved.Sha256, restored.Sha256);
        await RunnerTraces.AssertGoneAsync(warm, fx.RunnerWorkRoot);
    }
}

[Collection(AppHostCollection.Name)]
public sealed class CacheTestsOnAppHost(AppHostFixture fx) : CacheTests(fx);

[Collection(ServerCollection.Name)]
public sealed class CacheTestsOnServer(ServerFixture fx) : CacheTests(fx);
