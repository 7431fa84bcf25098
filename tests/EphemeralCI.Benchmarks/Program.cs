using EphemeralCI.Benchmarks;

// Benchmarks run on demand, never in the test suite. Each one measures its subject and a baseline
// in the same run (same machine, same load), and replaces only its own section of docs/benchmarks.md.
IBenchmark[] benchmarks = OperatingSystem.IsWindows()
    ? [new SecretsExchangeBenchmark(), new CacheBenchmark(), new CacheJobBenchmark()]
    : [new SecretsExchangeBenchmark(), new RunnerStartBenchmark(), new CacheBenchmark(), new CacheJobBenchmark(), new CcacheJobBenchmark(), new SoakBenchmark(), new CheckoutBenchmark(), new WebUiBenchmark(), new GitHubActionsBenchmark(), new SessionBenchmark()];

var name = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal));
var benchmark = benchmarks.FirstOrDefault(b => b.Name == name);
if (benchmark is null)
{
    Console.Error.WriteLine($"usage: EphemeralCI.Benchmarks <{string.Join("|", benchmarks.Select(b => b.Name))}> [--count N] [--concurrency N] [--minutes N (soak)] [--jobs N (webui)] [--out docs/benchmarks.md]");
    return 2;
}
var options = BenchmarkOptions.Parse(args);
var section = await benchmark.RunAsync(options);
BenchmarkReport.WriteSection(options.OutputPath, benchmark.Name, section);
Console.WriteLine(section);
Console.WriteLine($"written to {Path.GetFullPath(options.OutputPath)}");
return 0;
