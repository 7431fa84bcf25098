using System.Globalization;
using System.Text.RegularExpressions;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// The tools in a job use the remote cache through the agent's loopback endpoint, without a token: a real ccache
/// (Debian's) compiles a generated C project in one job and, in a second brand-new runner with an empty local
/// ccache, gets its objects from the remote cache — identical bytes — while no step ever sees the job token.
/// </summary>
public abstract partial class StepCacheTests(IEphemeralCISystem fx)
{
    private const int Files = 40;

    [Fact]
    public async Task Ccache_in_a_second_clean_runner_gets_its_objects_from_the_remote_cache()
    {
        // A salt in every file: objects another run of this test stored never count as hits here.
        var salt = Guid.NewGuid().ToString("N");
        object Job(string name) => new
        {
            name,
            repository = "acme/ccache-" + salt[..8],
            @ref = "refs/heads/main",
            commitSha = "0123456789abcdef0123456789abcdef01234567",
            runnerTemplate = "default",
            steps = new[]
            {
                new { name = "generate", run = $"mkdir -p src obj && for i in $(seq 1 {Files}); do printf '/* {salt} */\\nint f%d(int x) {{ return x * %d + 1; }}\\n' $i $i > src/f$i.c; done" },
                new
                {
                    name = "compile",
                    run = """
                        test -n "$ECI_CACHE_URL"
                        env | grep -c "^ECI_JOB_TOKEN\|eyJ" && exit 9 || true
                        export CCACHE_DIR=/tmp/ccache CCACHE_REMOTE_STORAGE="$ECI_CACHE_URL|layout=bazel"
                        ccache -z >/dev/null
                        for f in src/*.c; do ccache gcc -O2 -c "$f" -o "obj/$(basename "$f" .c).o"; done
                        ccache --print-stats | grep -E '^(remote_storage_hit|remote_storage_miss|remote_storage_error|remote_storage_write)\s' | sed 's/^/STAT /'
                        cat obj/*.o | sha256sum | sed 's/^/OBJECTS /'
                        """,
                },
            },
        };

        var cold = await RunAsync(Job("ccache-cold"));
        var warm = await RunAsync(Job("ccache-warm"));

        Assert.True(Stat(cold, "remote_storage_write") >= Files, cold);
        Assert.Equal(0, Stat(cold, "remote_storage_error"));
        var hits = Stat(warm, "remote_storage_hit");
        Assert.True(hits >= Files * 9 / 10, $"{hits} remote hits of {Files} compilations:\n{warm}");
        Assert.Equal(0, Stat(warm, "remote_storage_error"));
        Assert.Equal(Objects(cold), Objects(warm));
    }

    private async Task<string> RunAsync(object job)
    {
        var id = await fx.Intake.SubmitAsync(job);
        // A C build: under the whole suite's parallel load on 2 cores it has taken over 90 s (once, in CI).
        var result = await fx.Intake.WaitForTerminalAsync(id, TimeSpan.FromMinutes(4));
        var log = await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/logs");
        Assert.True(result.GetProperty("status").GetString() == "succeeded", $"{result}\n{log}");
        Assert.Contains("==> cache for the steps at http://127.0.0.1:", log);
        await fx.WaitForVerifiedRunnerEndAsync(id);
        return log;
    }

    private static int Stat(string log, string name) =>
        StatLine().Matches(log).Where(m => m.Groups[1].Value == name).Select(m => int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture)).Single();

    private static string Objects(string log) => ObjectsLine().Match(log).Groups[1].Value;

    [GeneratedRegex(@"STAT (\w+)\s+(\d+)")]
    private static partial Regex StatLine();

    [GeneratedRegex(@"OBJECTS ([0-9a-f]{64})")]
    private static partial Regex ObjectsLine();
}

[Collection(AppHostCollection.Name)]
public sealed class StepCacheTestsOnAppHost(AppHostFixture fx) : StepCacheTests(fx);

[Collection(ServerCollection.Name)]
public sealed class StepCacheTestsOnServer(ServerFixture fx) : StepCacheTests(fx);
