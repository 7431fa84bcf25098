using System.Reflection;
using System.Text.Json;
using EphemeralCI.Attestations;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Auth.Federation;
using EphemeralCI.Intake.Model;

namespace EphemeralCI.Intake.Attestations;

/// <summary>
/// Turns a finished job and its timeline into the attestation's predicate: what the intake recorded
/// (identity, template and its hash, the runner, times, caches, outcome) and the teardown check the
/// provisioner reported. Pure, so its shape is unit tested; the broker adds the secrets when it signs.
/// </summary>
public static class JobStatementBuilder
{
    /// <summary>This build of EphemeralCI, as <c>runDetails.builder.version.ephemeralci</c>.</summary>
    public static readonly string Version =
        typeof(JobStatementBuilder).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <param name="cacheUses">What the cache recorded serving this attempt; null when it cannot be asked (the runner's report is used).</param>
    public static JobStatement Build(Job job, IReadOnlyList<JobEvent> timeline, string builderId, IReadOnlyList<TrustPolicy> trustPolicies,
        IReadOnlyList<CacheUseRecord>? cacheUses = null)
    {
        var started = Last(timeline, JobEventTypes.RunnerStarted);
        var destroyed = Last(timeline, JobEventTypes.RunnerDestroyed);
        var startedData = Data<RunnerStartedData>(started);
        var destroyedData = Data<RunnerDestroyedData>(destroyed);
        var teardown = destroyedData?.Teardown;
        var spec = JsonSerializer.Deserialize<JobSpec>(job.Spec, JsonSerializerOptions.Web);

        var predicate = new JobPredicate(
            new BuildDefinition(
                AttestationFormat.BuildType,
                new ExternalParameters(job.Repository, job.Ref, job.CommitSha, job.RunnerTemplate, job.Environment, job.Name ?? spec?.Name),
                new InternalParameters(SubmitterOf(job, trustPolicies))),
            new RunDetails(
                new Builder(builderId, new Dictionary<string, string> { ["ephemeralci"] = Version }),
                new BuildMetadata(job.Id.ToString(), job.StartedAt, job.FinishedAt)),
            new JobRunner(startedData?.RunnerId ?? destroyedData?.RunnerId, startedData?.Backend ?? destroyedData?.Backend, new RunnerTemplateRef(job.RunnerTemplate, job.RunnerTemplateHash ?? startedData?.TemplateHash)),
            new JobLifecycle(job.CreatedAt, started?.At ?? job.StartedAt, job.FinishedAt, destroyed?.At),
            teardown,
            Secrets: null,
            cacheUses is null
                ? new JobCaches(Caches(timeline, JobEventTypes.CacheRestore, job), Caches(timeline, JobEventTypes.CacheSave, job), JobCaches.ByRunner)
                : new JobCaches(Caches(cacheUses, CacheUseKinds.Restore, job), Caches(cacheUses, CacheUseKinds.Save, job), JobCaches.ByCache),
            new JobOutcome(JobStatusNames.ToName(job.Status), job.ExitCode, job.StatusReason),
            EarlierAttempts(timeline, job));
        return JobStatement.For(predicate);
    }

    /// <summary><c>api-key:{id}</c>, or <c>oidc:{policy}:{subject}</c> with the policy's issuer.</summary>
    public static Submitter SubmitterOf(Job job, IReadOnlyList<TrustPolicy> trustPolicies)
    {
        var by = job.SubmittedBy;
        if (by is null) return new Submitter("api-key", null, job.ApiKeyId?.ToString());
        if (by.StartsWith("api-key:", StringComparison.Ordinal)) return new Submitter("api-key", by, by["api-key:".Length..]);
        if (by.StartsWith("oidc:", StringComparison.Ordinal) && by.Split(':', 3) is [_, var policy, var subject])
        {
            var issuer = trustPolicies.FirstOrDefault(p => p.Name == policy)?.Issuer;
            return new Submitter("oidc", by, TrustPolicy: policy, Issuer: issuer, Subject: subject);
        }
        return new Submitter("other", by);
    }

    private static List<CacheUse> Caches(IReadOnlyList<CacheUseRecord> uses, string kind, Job job) =>
        uses.Where(u => u.Kind == kind)
            .Select(u => new CacheUse(u.Key, kind == CacheUseKinds.Save ? "saved" : u.Hit ? "hit" : "miss", u.MatchedKey,
                u.Scope is { } scope ? $"{job.Repository}@{scope}" : null, u.Sha256?.ToLowerInvariant(), u.SizeBytes))
            .ToList();

    private static List<CacheUse> Caches(IReadOnlyList<JobEvent> timeline, string type, Job job) =>
        timeline.Where(e => e.Type == type)
            .Select(e => Data<CacheEventData>(e))
            .OfType<CacheEventData>()
            // A retried job's attestation is of its last attempt: an earlier, lost runner's caches are not this build's.
            .Where(c => (c.Attempt ?? 1) == job.Attempt)
            .Select(c => new CacheUse(c.Key, c.Result, c.MatchedKey,
                // A save writes the job's own scope; a restore may have read the default branch's too (as the cache answered).
                type == JobEventTypes.CacheSave ? $"{job.Repository}@{job.Ref}" : c.Scope is { } scope ? $"{job.Repository}@{scope}" : null,
                c.Sha256?.ToLowerInvariant(), c.Bytes))
            .ToList();

    /// <summary>The lost runners of a retried job's earlier attempts, each with its own teardown report; null for a job run once.</summary>
    private static List<EarlierAttempt>? EarlierAttempts(IReadOnlyList<JobEvent> timeline, Job job)
    {
        if (job.Attempt == 1) return null;
        var finished = timeline.Where(e => e.Type == JobEventTypes.RunnerFinished).Select(Data<RunnerFinishedData>).OfType<RunnerFinishedData>().ToList();
        return timeline.Where(e => e.Type == JobEventTypes.RunnerDestroyed)
            .Select(e => (e.At, Data: Data<RunnerDestroyedData>(e)))
            .Where(d => d.Data is not null && (d.Data.Attempt ?? 1) < job.Attempt)
            .Select(d => new EarlierAttempt(d.Data!.Attempt ?? 1, d.Data.RunnerId, d.Data.Backend,
                finished.LastOrDefault(f => f.RunnerId == d.Data.RunnerId)?.Reason, d.At, d.Data.Teardown))
            .OrderBy(a => a.Attempt)
            .ToList();
    }

    private static JobEvent? Last(IReadOnlyList<JobEvent> timeline, string type) => timeline.LastOrDefault(e => e.Type == type);

    private static T? Data<T>(JobEvent? e) where T : class
    {
        if (e?.Data is null) return null;
        try { return JsonSerializer.Deserialize<T>(e.Data, JsonSerializerOptions.Web); }
        catch (JsonException) { return null; }
    }

    private sealed record RunnerStartedData(string? RunnerId, string? Backend, string? TemplateHash);
    private sealed record RunnerDestroyedData(string? RunnerId, string? Backend, TeardownReport? Teardown, int? Attempt);
    private sealed record RunnerFinishedData(string? RunnerId, string? Reason);
    private sealed record CacheEventData(string Key, string Result, string? MatchedKey, long Bytes, string? Sha256, string? Scope, int? Attempt);
}
