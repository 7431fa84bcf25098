using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.RunnerAgent.Checkout;
using EphemeralCI.IntegrationTests.Infrastructure;

namespace EphemeralCI.Benchmarks;

/// <summary>
/// Checkout of a generated repository (≥ 20 000 files, several commits of history) into a fresh workspace: the
/// baseline is a plain <c>git clone</c> from the test forge (<c>git daemon</c> on loopback), full and <c>--depth 1</c>;
/// the subject is the runner agent's own checkout (<see cref="WorkspaceCheckout"/>, depth 1 and full) from the cache
/// host's warm mirror over git smart HTTP with a job token. Each figure is the median of <c>--count</c> runs (default 3).
/// </summary>
public sealed class CheckoutBenchmark : IBenchmark
{
    public string Name => "checkout";

    private const string Repository = "acme/big";
    private const int Files = 20_000;
    private const int FileBytes = 3_000;
    private const int Commits = 5;

    public async Task<string> RunAsync(BenchmarkOptions options)
    {
        var runs = Math.Min(options.Count, 5);
        if (options.Count == 500) runs = 3; // the default --count is for the latency benchmarks
        await using var forge = await TestForge.StartAsync();
        Console.WriteLine($"generating {Repository}: {Files} files, {Commits} commits");
        var generate = Stopwatch.StartNew();
        var head = Generate(forge);
        var history = DirectorySize(Path.Combine(forge.Repositories, Repository + ".git"));
        Console.WriteLine($"generated in {generate.Elapsed.TotalSeconds:0} s; bare repository {history / 1e6:0} MB");

        var host = new CacheBenchHost();
        var load = CacheBenchHost.LoadAverage();
        var work = Directory.CreateTempSubdirectory("eci-bench-checkout-");
        try
        {
            await using var cache = await host.StartAsync(Path.Combine(work.FullName, "spool"), new Dictionary<string, string?>
            {
                ["Checkout:Enabled"] = "true",
                ["Checkout:UrlTemplate"] = forge.UrlTemplate,
                ["Checkout:MirrorRoot"] = Path.Combine(work.FullName, "mirrors"),
            });
            var token = host.Tokens.Issue(Guid.NewGuid(), Repository, "refs/heads/main", DateTimeOffset.UtcNow.AddHours(1));

            // The mirror's first fetch (what the first job of a repository pays, once).
            var cold = Stopwatch.StartNew();
            using (var http = new HttpClient { BaseAddress = cache.Address, Timeout = TimeSpan.FromMinutes(10) })
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "git/verify") { Content = JsonContent.Create(new { commitSha = head }) };
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                using var response = await http.SendAsync(request);
                if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"verify: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }
            var mirrorFetch = cold.Elapsed;

            var job = new RunnerJob(Guid.NewGuid(), new JobSpec { Repository = Repository, Ref = "refs/heads/main", CommitSha = head });
            async Task<TimeSpan> WarmAsync(int depth)
            {
                var workspace = Directory.CreateDirectory(Path.Combine(work.FullName, "ws-" + Guid.NewGuid().ToString("N")[..8])).FullName;
                var checkout = new WorkspaceCheckout(token, workspace, cacheSocket: null, cacheUrl: cache.Address.ToString());
                var sw = Stopwatch.StartNew();
                var outcome = await checkout.RunAsync(job with { Spec = job.Spec with { Checkout = new CheckoutSpec { Depth = depth } } }, CancellationToken.None);
                var elapsed = sw.Elapsed;
                if (outcome is null || outcome.Failed) throw new InvalidOperationException(outcome?.Message ?? "no checkout");
                Check(workspace, head);
                Directory.Delete(workspace, recursive: true);
                return elapsed;
            }
            TimeSpan Plain(bool shallow)
            {
                var target = Path.Combine(work.FullName, "clone-" + Guid.NewGuid().ToString("N")[..8]);
                var sw = Stopwatch.StartNew();
                TestForge.Git(null, shallow ? ["clone", "--quiet", "--depth=1", forge.UrlOf(Repository), target] : ["clone", "--quiet", forge.UrlOf(Repository), target]);
                var elapsed = sw.Elapsed;
                Check(target, head);
                Directory.Delete(target, recursive: true);
                return elapsed;
            }

            var rows = new List<(string Name, List<TimeSpan> Times)>
            {
                ("plain `git clone` from the forge (baseline)", []),
                ("plain `git clone --depth 1` from the forge", []),
                ("warm-mirror checkout, depth 1 (the default)", []),
                ("warm-mirror checkout, full history (`depth: 0`)", []),
            };
            for (var i = 0; i < runs; i++)
            {
                Console.WriteLine($"round {i + 1}/{runs}");
                rows[0].Times.Add(Plain(shallow: false));
                rows[1].Times.Add(Plain(shallow: true));
                rows[2].Times.Add(await WarmAsync(1));
                rows[3].Times.Add(await WarmAsync(0));
            }

            var baseline = Median(rows[0].Times);
            var text = new StringBuilder();
            text.AppendLine("## Checkout: plain clone versus the warm mirror");
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"Run {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC, `dotnet run --project tests/EphemeralCI.Benchmarks -c Release -- checkout`, load average at start {load}.");
            text.AppendLine(CultureInfo.InvariantCulture, $"A generated repository `{Repository}`: {Files} files of {FileBytes} bytes of random text, {Commits} commits (each rewrites a fifth of the files), bare size {history / 1e6:0} MB, served by `git daemon` on loopback (the test forge).");
            text.AppendLine("The warm-mirror checkout is the runner agent's own code (`WorkspaceCheckout`: init, fetch the commit by SHA with the job token, check out) against the cache host process over git smart HTTP (`git http-backend` from the mirror), into a fresh folder each time.");
            text.AppendLine(CultureInfo.InvariantCulture, $"The mirror's first fetch from the forge (once per repository, shared by concurrent jobs) took {mirrorFetch.TotalSeconds:0.00} s. Median of {runs} runs each, interleaved.");
            text.AppendLine();
            text.AppendLine("| scenario | median | runs | vs plain clone |");
            text.AppendLine("| --- | ---: | --- | ---: |");
            foreach (var (name, times) in rows)
            {
                var median = Median(times);
                text.AppendLine(CultureInfo.InvariantCulture,
                    $"| {name} | {median.TotalSeconds:0.00} s | {string.Join(", ", times.Select(t => t.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture)))} | {baseline / median:0.0}× |");
            }
            return text.ToString();
        }
        finally
        {
            try { work.Delete(recursive: true); } catch (IOException) { }
        }
    }

    private static string Generate(TestForge forge)
    {
        forge.CreateRepository(Repository);
        var work = forge.WorkOf(Repository);
        var random = new Random(15);
        var buffer = new byte[FileBytes * 3 / 4];
        string head = "";
        for (var c = 0; c < Commits; c++)
        {
            for (var i = 0; i < Files; i++)
            {
                if (c > 0 && i % Commits != c) continue;
                random.NextBytes(buffer);
                var path = Path.Combine(work, "src", $"m{i / 500:000}", $"f{i:00000}.txt");
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                File.WriteAllText(path, Convert.ToBase64String(buffer));
            }
            head = forge.Commit(Repository, "main", new Dictionary<string, string> { ["VERSION"] = c.ToString(CultureInfo.InvariantCulture) }, $"generation {c}");
        }
        return head;
    }

    private static void Check(string folder, string head)
    {
        var actual = TestForge.Git(folder, "rev-parse", "HEAD").Trim();
        if (actual != head) throw new InvalidOperationException($"checked out {actual}, not {head}");
        var files = Directory.EnumerateFiles(Path.Combine(folder, "src"), "*", SearchOption.AllDirectories).Count();
        if (files != Files) throw new InvalidOperationException($"{files} files in the checkout, not {Files}");
    }

    private static TimeSpan Median(List<TimeSpan> times) => times.Order().ElementAt(times.Count / 2);

    private static long DirectorySize(string folder) =>
        new DirectoryInfo(folder).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
}
