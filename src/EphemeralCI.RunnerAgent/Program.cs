using EphemeralCI.RunnerAgent;
using EphemeralCI.RunnerAgent.Caching;

// The runner agent: one job, then exit. Exit code 0 means "the result was reported" (whatever the
// job's outcome); non-zero means the intake never heard the result, so the provisioner's own
// RunnerFinished is the only record.
if (!ProcessHardening.MakeUndumpable())
{
    Console.Error.WriteLine("runner-agent: could not make the agent non-dumpable; steps may be able to read its memory");
}
if (ProcessHardening.KeepTempPrivate() is { } tempProblem)
{
    Console.Error.WriteLine($"runner-agent: {tempProblem}");
}
var token = Console.In.ReadLine()?.Trim();
if (string.IsNullOrEmpty(token))
{
    Console.Error.WriteLine("runner-agent: no job token on standard input");
    return 2;
}

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };

try
{
    using var client = IntakeClient.FromEnvironment(token);
    using var secrets = SecretsClient.FromEnvironment(token);
    using var cache = CacheServiceClient.FromEnvironment(token);
    var env = AgentEnvironment.FromProcess();
    // The steps' own way to the cache (a loopback forwarder holding the token), on its own connection to the cache service.
    using var stepCacheHttp = CacheServiceClient.HttpFromEnvironment();
    Func<StepCacheEndpoint>? stepCache = stepCacheHttp is null ? null : () => StepCacheEndpoint.Start(stepCacheHttp, token);
    // Once the job is fetched, every other call joins its trace (the steps' cache traffic too).
    client.JobFetched += job =>
    {
        secrets?.JoinTrace(job.TraceParent);
        cache?.JoinTrace(job.TraceParent);
        AgentTrace.Join(stepCacheHttp, job.TraceParent);
    };
    var checkout = EphemeralCI.RunnerAgent.Checkout.WorkspaceCheckout.FromEnvironment(token, env.Workspace);
    var runner = new JobRunner(client, env, secrets, cache is null ? null : new JobCaches(cache, env.Workspace), stepCache, checkout);
    return await runner.RunAsync(cts.Token);
}
catch (JobEndedException ended)
{
    // A session deleted, a job cancelled or timed out while this runner worked: the intake recorded the end, the provisioner
    // destroys the runner. Not a failure to report (exit 0: the intake has the job's result).
    Console.WriteLine($"runner-agent: the job is {ended.Status}; stopping (nothing more to report)");
    return 0;
}
catch (Exception ex)
{
    // Diagnostics for the provisioner log only; never print the token.
    Console.Error.WriteLine($"runner-agent: could not report the job: {ex.GetType().Name}: {ex.Message}");
    return 3;
}
