using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Backends;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;

namespace EphemeralCI.Provisioner.Teardown;

/// <summary>
/// Destroys a runner through its backend, then has the backend's <see cref="ITeardownVerifier"/> confirm
/// that nothing is left. A check that finds something runs cleanup again (Polly retry, growing pause),
/// up to <see cref="TeardownOptions.MaxAttempts"/>; every failed attempt is counted and logged with
/// what it found, and the report carries it to the job's timeline (<c>runner.leftover</c>).
/// </summary>
public sealed class RunnerTeardown(
    IEnumerable<ITeardownVerifier> verifiers,
    IOptions<TeardownOptions> options,
    TeardownMetrics metrics,
    TimeProvider clock,
    ILogger<RunnerTeardown> logger)
{
    private readonly Dictionary<string, ITeardownVerifier> _verifiers =
        verifiers.ToDictionary(v => v.Backend, StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Kills and destroys the runner; returns the check's report, or null when the check is turned off.
    /// <paramref name="released"/> is called once, as soon as a cleanup has succeeded and before the check:
    /// the runner's resources are freed then, so its slot need not wait for the check.
    /// </summary>
    public async Task<TeardownReport?> DestroyAsync(IRunnerBackend backend, RunnerRef runner, Func<CancellationToken, Task> released, CancellationToken ct)
    {
        var o = options.Value;
        var releasedOnce = false;
        async Task CleanUpAndReleaseAsync(CancellationToken token)
        {
            await CleanUpAsync(backend, runner, token);
            if (releasedOnce) return;
            releasedOnce = true;
            await released(token);
        }

        if (!o.Verify)
        {
            await CleanUpAndReleaseAsync(ct);
            return null;
        }
        if (!_verifiers.TryGetValue(backend.Name, out var verifier))
        {
            await CleanUpAndReleaseAsync(ct);
            return new TeardownReport(false, 1, [new TeardownCheck("verifier", false, backend.Name, $"no teardown check exists for the '{backend.Name}' backend")]);
        }

        var target = verifier.Target(runner);
        var leftovers = new List<string>();
        var attempt = 0;
        var pipeline = new ResiliencePipelineBuilder<IReadOnlyList<TeardownCheck>>
        {
            TimeProvider = clock,
        }.AddRetry(new RetryStrategyOptions<IReadOnlyList<TeardownCheck>>
        {
            MaxRetryAttempts = Math.Max(0, o.MaxAttempts - 1),
            Delay = o.RetryDelay,
            BackoffType = DelayBackoffType.Linear,
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Result is { } checks && checks.Any(c => !c.Passed)),
        }).Build();

        var checks = await pipeline.ExecuteAsync(async token =>
        {
            attempt++;
            IReadOnlyList<TeardownCheck> result;
            try
            {
                await CleanUpAndReleaseAsync(token);
                result = await verifier.VerifyAsync(target, token);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                metrics.Failed(backend.Name, final: attempt >= o.MaxAttempts);
                leftovers.Add($"attempt {attempt}: cleanup failed: {ex.Message}");
                logger.LogWarning("Teardown of runner {RunnerId} (job {JobId}), attempt {Attempt} of {Max}, failed: {Error}",
                    runner.RunnerId, runner.JobId, attempt, o.MaxAttempts, ex.Message);
                // The last one stays an error: the runner is not said destroyed, and the reconciler tries again later.
                if (attempt >= o.MaxAttempts) throw;
                return [new TeardownCheck("cleanup", false, backend.Name, ex.Message)];
            }
            var failed = result.Where(c => !c.Passed).ToList();
            if (failed.Count > 0)
            {
                var found = string.Join("; ", failed.Select(c => $"{c.Name}: {c.Found}"));
                leftovers.Add($"attempt {attempt}: {found}");
                metrics.Failed(backend.Name, final: attempt >= o.MaxAttempts);
                logger.LogWarning("Teardown check of runner {RunnerId} (job {JobId}), attempt {Attempt} of {Max}, found leftovers: {Found}",
                    runner.RunnerId, runner.JobId, attempt, o.MaxAttempts, found);
            }
            return result;
        }, ct);

        var passed = checks.All(c => c.Passed);
        if (!passed)
        {
            logger.LogError("Runner {RunnerId} of job {JobId} still has leftovers after {Attempts} cleanup attempts", runner.RunnerId, runner.JobId, attempt);
        }
        return new TeardownReport(passed, attempt, checks, leftovers.Count > 0 ? leftovers : null);
    }

    private static async Task CleanUpAsync(IRunnerBackend backend, RunnerRef runner, CancellationToken ct)
    {
        await backend.KillAsync(runner, ct);
        await backend.DestroyAsync(runner, ct);
    }
}
