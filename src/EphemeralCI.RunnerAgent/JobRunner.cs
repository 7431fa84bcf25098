using System.Diagnostics;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.RunnerAgent.Caching;

namespace EphemeralCI.RunnerAgent;

/// <summary>
/// Fetches the job, exchanges its token for the job's secrets, runs its steps in order with bash
/// (secrets in every step's environment, by name), streams their output with every secret masked
/// and reports the result. The job's caches are restored before the first step and saved after a
/// successful job; the job's commit is checked out from the cache's git mirror before them; cache outcomes (hit, miss, sizes,
/// durations) go to the job's log and timeline. While the steps run, <paramref name="stepCache"/> (when the runner can reach
/// a cache) serves the cache to the tools in the steps on loopback.
/// </summary>
public sealed class JobRunner(IntakeClient intake, AgentEnvironment env, SecretsClient? secretsBroker = null, JobCaches? caches = null,
    Func<StepCacheEndpoint>? stepCache = null, Checkout.WorkspaceCheckout? checkout = null)
{
    private IReadOnlyDictionary<string, string> _secrets = new Dictionary<string, string>();
    private IReadOnlyDictionary<string, string> _stepCacheVariables = new Dictionary<string, string>();

    public async Task<int> RunAsync(CancellationToken ct)
    {
        var job = await intake.GetJobAsync(ct);
        var steps = job.Spec.Steps ?? [];
        await using var streamer = new LogStreamer(intake.PostLogAsync);
        var (grant, failure) = await JobSecrets.FetchAsync(secretsBroker, job.Spec.Secrets ?? [], ct);
        _secrets = grant.Secrets;
        var log = new MaskingLog(streamer, new SecretMasker(grant.Secrets.Values.Concat(MaskedEnvValues(job.Spec))));
        foreach (var line in JobSecrets.Describe(grant)) await log.WriteAgentLineAsync(line, ct);
        if (failure is not null)
        {
            await log.WriteAgentLineAsync($"==> {failure}", ct);
            await log.FlushAsync(ct);
            await intake.CompleteAsync(new RunnerCompletion(false, 1, null), ct);
            return 0;
        }

        // The commit first (from the cache's mirror), so caches restore into the checked-out tree.
        if (checkout is not null && await checkout.RunAsync(job, ct) is { } checkedOut)
        {
            await log.WriteAgentLineAsync($"==> {checkedOut.Message}", ct);
            if (checkedOut.Failed)
            {
                await log.FlushAsync(ct);
                await intake.CompleteAsync(new RunnerCompletion(false, 1, null), ct);
                return 0;
            }
        }

        var cacheSpecs = job.Spec.Caches ?? [];
        if (cacheSpecs.Count > 0 && caches is null) await log.WriteAgentLineAsync("==> caches skipped: this runner has no way to the cache service", ct);
        if (cacheSpecs.Count > 0 && caches is not null)
        {
            foreach (var outcome in await caches.RestoreAsync(cacheSpecs, ct)) await ReportAsync(outcome, log, ct);
        }

        await using var stepCacheEndpoint = await StartStepCacheAsync(log, ct);
        int? failedStep = null;
        var exitCode = 0;
        var session = job.Spec.Session;
        if (session?.Interactive == true)
        {
            exitCode = await RunShellAsync(job, session, log, ct);
            failedStep = exitCode == 0 ? null : 0;
        }
        else await foreach (var (i, step) in StepsAsync(job, log, ct))
        {
            var name = string.IsNullOrWhiteSpace(step.Name) ? (session is null ? $"step {i + 1}" : $"command {i + 1}") : step.Name;
            var which = session is null ? $"step {i + 1}/{steps.Count}" : $"command {i + 1}";
            await intake.PostEventAsync(new RunnerStepEvent(JobEventTypes.StepStarted, i, name, null, DateTimeOffset.UtcNow), ct);
            await log.WriteAgentLineAsync($"==> {which}: {name}", ct);

            exitCode = await RunStepAsync(job, step, log, ct);
            await log.FlushAsync(ct);
            if (exitCode != 0) await log.WriteAgentLineAsync($"==> {which}: {name} failed with exit code {exitCode}", ct);
            await log.FlushAsync(ct);
            await intake.PostEventAsync(new RunnerStepEvent(JobEventTypes.StepFinished, i, name, exitCode, DateTimeOffset.UtcNow), ct);
            // A session goes on after a failed command (like a shell); its result is its last command's.
            failedStep = exitCode != 0 ? i : session is null ? failedStep : null;
            if (exitCode != 0 && session is null) break;
        }

        // Steps are over: nothing left in the runner may use the job's cache credentials.
        if (stepCacheEndpoint is not null) await stepCacheEndpoint.DisposeAsync();
        _stepCacheVariables = new Dictionary<string, string>();

        // Only a successful job's files are worth keeping; a failed one may have half-written them. A session's tree is
        // whatever its commands made by hand: caches are restored into it but never saved from it.
        if (failedStep is null && session is null && cacheSpecs.Count > 0 && caches is not null)
        {
            foreach (var outcome in await caches.SaveAsync(cacheSpecs, ct)) await ReportAsync(outcome, log, ct);
        }
        await log.FlushAsync(ct);

        await intake.CompleteAsync(new RunnerCompletion(failedStep is null, exitCode, failedStep), ct);
        return 0;
    }

    /// <summary>
    /// A job's steps, or a session's commands as they arrive: the session ends once no command has come for its idle timeout
    /// (a deleted or timed-out session's runner is destroyed by the provisioner, this loop with it).
    /// </summary>
    private async IAsyncEnumerable<(int Index, StepSpec Step)> StepsAsync(RunnerJob job, MaskingLog log, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        if (job.Spec.Session is not { } session)
        {
            var steps = job.Spec.Steps ?? [];
            for (var i = 0; i < steps.Count; i++) yield return (i, steps[i]);
            yield break;
        }
        var idle = TimeSpan.FromSeconds(session.IdleTimeoutSeconds ?? SessionSpec.DefaultIdleTimeoutSeconds);
        var next = 0;
        var idleSince = DateTimeOffset.UtcNow;
        await log.WriteAgentLineAsync($"==> session ready: waiting for commands (idle timeout {idle.TotalSeconds:0} s)", ct);
        await log.FlushAsync(ct);
        while (true)
        {
            var left = idleSince + idle - DateTimeOffset.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                await log.WriteAgentLineAsync($"==> session idle for {idle.TotalSeconds:0} s: ending it", ct);
                yield break;
            }
            var batch = await intake.GetCommandsAsync(next, left, ct);
            foreach (var command in batch.Commands)
            {
                yield return (next++, command);
                idleSince = DateTimeOffset.UtcNow;
            }
        }
    }

    /// <summary>An interactive session: its shell is its one step, and the shell's exit code the session's.</summary>
    private async Task<int> RunShellAsync(RunnerJob job, SessionSpec session, MaskingLog log, CancellationToken ct)
    {
        const string name = "interactive shell";
        var idle = TimeSpan.FromSeconds(session.IdleTimeoutSeconds ?? SessionSpec.DefaultIdleTimeoutSeconds);
        await intake.PostEventAsync(new RunnerStepEvent(JobEventTypes.StepStarted, 0, name, null, DateTimeOffset.UtcNow), ct);
        await log.WriteAgentLineAsync($"==> session ready: waiting for the terminal (idle timeout {idle.TotalSeconds:0} s)", ct);
        await log.FlushAsync(ct);
        var environment = new Dictionary<string, string>(StepEnvironment(job, new StepSpec()), StringComparer.Ordinal) { ["TERM"] = "xterm-256color" };
        environment.TryAdd("PS1", "eci:\\w\\$ ");
        var exitCode = await new Terminal.InteractiveShell(intake, log, idle).RunAsync(env.Workspace, environment, ct);
        await log.FlushAsync(ct);
        await log.WriteAgentLineAsync($"==> {name} exited with code {exitCode}", ct);
        await log.FlushAsync(ct);
        await intake.PostEventAsync(new RunnerStepEvent(JobEventTypes.StepFinished, 0, name, exitCode, DateTimeOffset.UtcNow), ct);
        return exitCode;
    }

    /// <summary>The steps' cache endpoint; a runner whose endpoint cannot start runs its steps without one.</summary>
    private async Task<StepCacheEndpoint?> StartStepCacheAsync(MaskingLog log, CancellationToken ct)
    {
        if (stepCache is null) return null;
        try
        {
            var endpoint = stepCache();
            _stepCacheVariables = endpoint.StepVariables;
            await log.WriteAgentLineAsync($"==> cache for the steps at {endpoint.BaseUrl} (ECI_CACHE_URL={endpoint.BuildCacheUrl}, ACTIONS_RESULTS_URL)", ct);
            return endpoint;
        }
        catch (Exception e) when (e is System.Net.HttpListenerException or System.Net.Sockets.SocketException)
        {
            await log.WriteAgentLineAsync($"==> cache for the steps not started: {e.Message}", ct);
            return null;
        }
    }

    /// <summary>A cache outcome goes to the log and to the timeline; a timeline that cannot be told never fails the job.</summary>
    private async Task ReportAsync(Caching.CacheOutcome outcome, MaskingLog log, CancellationToken ct)
    {
        await log.WriteAgentLineAsync($"==> {outcome}", ct);
        try
        {
            await intake.PostCacheEventAsync(new RunnerCacheEvent(outcome.Operation, outcome.Key, outcome.Result, outcome.MatchedKey,
                outcome.Bytes, (long)outcome.Duration.TotalMilliseconds, outcome.Error, DateTimeOffset.UtcNow, outcome.Sha256, outcome.Scope), ct);
        }
        catch (HttpRequestException ex)
        {
            await log.WriteAgentLineAsync($"==> cache event not recorded in the timeline: {ex.Message}", ct);
        }
    }

    private async Task<int> RunStepAsync(RunnerJob job, StepSpec step, MaskingLog log, CancellationToken ct)
    {
        // Merging stderr inside the script keeps the two streams in their real order.
        var script = Path.Combine(env.StepTemp, $"eci-step-{Guid.NewGuid():N}.sh");
        await File.WriteAllTextAsync(script, "exec 2>&1\n" + (step.Run ?? "") + "\n", ct);
        try
        {
            var psi = new ProcessStartInfo("bash")
            {
                WorkingDirectory = env.Workspace,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var arg in (string[])["--noprofile", "--norc", "-eo", "pipefail", script]) psi.ArgumentList.Add(arg);
            psi.Environment.Clear();
            foreach (var (key, value) in StepEnvironment(job, step)) psi.Environment[key] = value;

            using var process = Process.Start(psi) ?? throw new InvalidOperationException("bash did not start");
            process.StandardInput.Close(); // steps read /dev/null-like EOF, never the agent's stdin
            var stderr = process.StandardError.BaseStream.CopyToAsync(Stream.Null, ct);
            var pump = PumpAsync(process.StandardOutput.BaseStream, log, ct);
            await process.WaitForExitAsync(ct);
            // A background process the step left behind may hold the pipe open; it dies with the
            // sandbox, so do not let it stall the job: give the output a moment, then move on.
            await Task.WhenAny(Task.WhenAll(pump, stderr), Task.Delay(TimeSpan.FromSeconds(2), ct));
            return process.ExitCode;
        }
        finally
        {
            File.Delete(script);
        }
    }

    private static async Task PumpAsync(Stream stdout, MaskingLog log, CancellationToken ct)
    {
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await stdout.ReadAsync(buffer, ct)) > 0)
        {
            await log.WriteStepOutputAsync(buffer.AsMemory(0, read), ct);
        }
    }

    /// <summary>The values of the variables the spec names in <c>maskedEnv</c>, wherever they are set.</summary>
    internal static IEnumerable<string> MaskedEnvValues(JobSpec spec)
    {
        var names = spec.MaskedEnv ?? [];
        var all = (spec.Env ?? new Dictionary<string, string>()).Concat((spec.Steps ?? []).SelectMany(s => s.Env ?? new Dictionary<string, string>()));
        return all.Where(kv => names.Contains(kv.Key, StringComparer.Ordinal) && kv.Value.Length > 0).Select(kv => kv.Value);
    }

    /// <summary>
    /// HOME, PATH, CI, RUNNER_TEMP, the job id, the cache endpoint's variables, then the job's env, then the step's, then the job's secrets
    /// by name (later wins). Never the token: <c>ACTIONS_RUNTIME_TOKEN</c> is a placeholder the endpoint replaces.
    /// </summary>
    public IReadOnlyDictionary<string, string> StepEnvironment(RunnerJob job, StepSpec step)
    {
        var vars = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["HOME"] = env.Home,
            ["PATH"] = env.Path,
            ["CI"] = "true",
            // GitHub's runner name for the steps' temporary folder: @actions/cache and the setup-* actions create their
            // archives there (without it, under /home, which a runner does not have).
            ["RUNNER_TEMP"] = env.StepTemp,
            [RunnerEnvironment.JobId] = job.JobId.ToString(),
            [RunnerEnvironment.Workspace] = env.Workspace,
        };
        foreach (var (k, v) in _stepCacheVariables) vars[k] = v;
        foreach (var (k, v) in job.Spec.Env ?? new Dictionary<string, string>()) vars[k] = v;
        foreach (var (k, v) in step.Env ?? new Dictionary<string, string>()) vars[k] = v;
        // Last, so a spec cannot shadow a secret's name with a value of its choosing.
        foreach (var (k, v) in _secrets) vars[k] = v;
        return vars;
    }
}
