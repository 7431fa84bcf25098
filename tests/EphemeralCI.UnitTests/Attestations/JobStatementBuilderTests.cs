using System.Text.Json;
using EphemeralCI.Attestations;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Attestations;
using EphemeralCI.Intake.Auth.Federation;
using EphemeralCI.Intake.Model;
using EphemeralCI.SecretsBroker.Attestations;
using Xunit;

namespace EphemeralCI.UnitTests.Attestations;

public sealed class JobStatementBuilderTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 3, 6, 0, 0, TimeSpan.Zero);

    private static (Job Job, List<JobEvent> Timeline) FinishedJob(string submittedBy = "api-key:7")
    {
        var job = new Job
        {
            Id = Guid.NewGuid(), Name = "build", Repository = "acme/widgets", Ref = "refs/heads/main",
            CommitSha = TestAttestations.Commit, RunnerTemplate = "default", SubmittedBy = submittedBy,
            RunnerTemplateHash = "sha256:" + new string('c', 64), Spec = "{}", CreatedAt = T0,
        };
        job.TryMoveTo(JobStatus.Running, T0.AddSeconds(1));
        job.TryMoveTo(JobStatus.Succeeded, T0.AddSeconds(5), "all steps succeeded", 0);
        var teardown = new TeardownReport(true, 1, [new TeardownCheck("cgroup", true, "/sys/fs/cgroup/x")]);
        string Json(object o) => JsonSerializer.Serialize(o, JsonSerializerOptions.Web);
        var timeline = new List<JobEvent>
        {
            new() { JobId = job.Id, Type = JobEventTypes.RunnerStarted, At = T0.AddSeconds(1), Data = Json(new { RunnerId = "runner-1", Backend = "local", TemplateHash = "sha256:x" }) },
            new() { JobId = job.Id, Type = JobEventTypes.CacheRestore, At = T0.AddSeconds(2), Data = Json(new { Key = "deps", Result = "hit", MatchedKey = "deps", Bytes = 10L, DurationMs = 1L, Sha256 = new string('A', 64), Scope = "refs/heads/trunk" }) },
            new() { JobId = job.Id, Type = JobEventTypes.CacheSave, At = T0.AddSeconds(4), Data = Json(new { Key = "out", Result = "saved", Bytes = 20L, DurationMs = 1L, Sha256 = new string('d', 64) }) },
            new() { JobId = job.Id, Type = JobEventTypes.RunnerDestroyed, At = T0.AddSeconds(6), Data = Json(new { RunnerId = "runner-1", Teardown = teardown }) },
        };
        return (job, timeline);
    }

    [Fact]
    public void Caches_are_what_the_cache_recorded_serving_the_attempt_when_it_can_be_asked_not_what_the_runner_reported()
    {
        var (job, timeline) = FinishedJob();
        var sha = new string('e', 64);
        IReadOnlyList<CacheUseRecord> served =
        [
            new(CacheUseKinds.Restore, "actions-v2", "deps", "v", Hit: false, null, null, null, 0, T0.AddSeconds(2)),
            new(CacheUseKinds.Restore, "actions-v1", "npm-lock", "v", Hit: true, "npm-", "refs/heads/main", sha.ToUpperInvariant(), 77, T0.AddSeconds(3)),
            new(CacheUseKinds.Save, "actions-v2", "out", "v", Hit: true, null, "refs/heads/main", sha, 88, T0.AddSeconds(4)),
        ];

        var byCache = JobStatementBuilder.Build(job, timeline, "https://ci.acme.example/eci", [], served).Predicate.Caches;
        var byRunner = JobStatementBuilder.Build(job, timeline, "https://ci.acme.example/eci", []).Predicate.Caches;

        Assert.Equal(JobCaches.ByCache, byCache.RecordedBy);
        // The runner said it restored "deps" (hit); the cache answered a miss — and served a restore a step made itself.
        Assert.Equal([new CacheUse("deps", "miss", null, null, null, 0), new CacheUse("npm-lock", "hit", "npm-", "acme/widgets@refs/heads/main", sha, 77)], byCache.Restored);
        Assert.Equal([new CacheUse("out", "saved", null, "acme/widgets@refs/heads/main", sha, 88)], byCache.Saved);
        Assert.Equal(JobCaches.ByRunner, byRunner.RecordedBy);
        Assert.Equal("hit", Assert.Single(byRunner.Restored).Result);
    }

    [Fact]
    public void The_statement_is_an_in_toto_v1_statement_about_the_commit_with_SLSA_field_names()
    {
        var (job, timeline) = FinishedJob();
        var statement = JobStatementBuilder.Build(job, timeline, "https://ci.acme.example/eci", []);
        using var doc = JsonDocument.Parse(JsonSerializer.Serialize(statement, AttestationFormat.Json));
        var root = doc.RootElement;

        Assert.Equal("https://in-toto.io/Statement/v1", root.GetProperty("_type").GetString());
        Assert.Equal("https://ephemeralci.dev/attestation/job/v1", root.GetProperty("predicateType").GetString());
        var subject = Assert.Single(root.GetProperty("subject").EnumerateArray());
        Assert.Equal("acme/widgets", subject.GetProperty("name").GetString());
        Assert.Equal(TestAttestations.Commit, subject.GetProperty("digest").GetProperty("gitCommit").GetString());

        var p = root.GetProperty("predicate");
        Assert.Equal(AttestationFormat.BuildType, p.GetProperty("buildDefinition").GetProperty("buildType").GetString());
        Assert.Equal("refs/heads/main", p.GetProperty("buildDefinition").GetProperty("externalParameters").GetProperty("ref").GetString());
        Assert.Equal("api-key", p.GetProperty("buildDefinition").GetProperty("internalParameters").GetProperty("submitter").GetProperty("kind").GetString());
        Assert.Equal("7", p.GetProperty("buildDefinition").GetProperty("internalParameters").GetProperty("submitter").GetProperty("keyId").GetString());
        Assert.Equal("https://ci.acme.example/eci", p.GetProperty("runDetails").GetProperty("builder").GetProperty("id").GetString());
        Assert.True(p.GetProperty("runDetails").GetProperty("builder").GetProperty("version").TryGetProperty("ephemeralci", out _));
        Assert.Equal(job.Id.ToString(), p.GetProperty("runDetails").GetProperty("metadata").GetProperty("invocationId").GetString());

        Assert.Equal("runner-1", p.GetProperty("runner").GetProperty("id").GetString());
        Assert.Equal("local", p.GetProperty("runner").GetProperty("backend").GetString());
        Assert.Equal(job.RunnerTemplateHash, p.GetProperty("runner").GetProperty("template").GetProperty("digest").GetString());
        Assert.Equal(T0.AddSeconds(6), p.GetProperty("lifecycle").GetProperty("destroyedAt").GetDateTimeOffset());
        Assert.True(p.GetProperty("teardown").GetProperty("passed").GetBoolean());
        Assert.Equal("cgroup", p.GetProperty("teardown").GetProperty("checks")[0].GetProperty("name").GetString());
        Assert.Equal(JsonValueKind.Null, p.GetProperty("secrets").ValueKind); // the broker fills it in

        var restored = Assert.Single(p.GetProperty("caches").GetProperty("restored").EnumerateArray());
        Assert.Equal(new string('a', 64), restored.GetProperty("sha256").GetString()); // lower case
        Assert.Equal("acme/widgets@refs/heads/trunk", restored.GetProperty("scope").GetString()); // where the cache found it
        var saved = Assert.Single(p.GetProperty("caches").GetProperty("saved").EnumerateArray());
        Assert.Equal("acme/widgets@refs/heads/main", saved.GetProperty("scope").GetString());
        Assert.Equal(20, saved.GetProperty("sizeBytes").GetInt64());
        Assert.Equal("succeeded", p.GetProperty("outcome").GetProperty("status").GetString());
        Assert.Equal(0, p.GetProperty("outcome").GetProperty("exitCode").GetInt32());
    }

    [Fact]
    public void A_retried_jobs_statement_is_of_its_last_attempt_and_lists_the_lost_runner_with_its_teardown()
    {
        var job = new Job
        {
            Id = Guid.NewGuid(), Repository = "acme/widgets", Ref = "refs/heads/main", CommitSha = TestAttestations.Commit,
            RunnerTemplate = "default", Spec = "{\"retry\":{\"infrastructure\":1}}", CreatedAt = T0,
        };
        job.TryMoveTo(JobStatus.Running, T0.AddSeconds(1));
        Assert.True(job.RetryAfterLoss(1));
        job.RunnerDestroyed(1);
        job.StartNextAttempt(0);
        job.TryMoveTo(JobStatus.Running, T0.AddSeconds(10));
        job.TryMoveTo(JobStatus.Succeeded, T0.AddSeconds(15), "all steps succeeded", 0);
        job.RunnerDestroyed(2);
        string Json(object o) => JsonSerializer.Serialize(o, JsonSerializerOptions.Web);
        var gone = new TeardownReport(true, 1, [new TeardownCheck("cgroup", true, "/sys/fs/cgroup/x")]);
        var timeline = new List<JobEvent>
        {
            new() { JobId = job.Id, Type = JobEventTypes.RunnerStarted, At = T0.AddSeconds(1), Data = Json(new { RunnerId = "runner-a", Backend = "local" }) },
            new() { JobId = job.Id, Type = JobEventTypes.CacheRestore, At = T0.AddSeconds(2), Data = Json(new { Key = "deps", Result = "hit", Bytes = 10L, Sha256 = new string('a', 64) }) },
            new() { JobId = job.Id, Type = JobEventTypes.RunnerFinished, At = T0.AddSeconds(3), Data = Json(new { RunnerId = "runner-a", Outcome = "Lost", Reason = "provisioner restarted", Attempt = 1 }) },
            new() { JobId = job.Id, Type = JobEventTypes.RunnerDestroyed, At = T0.AddSeconds(4), Data = Json(new { RunnerId = "runner-a", Backend = "local", Teardown = gone, Attempt = 1 }) },
            new() { JobId = job.Id, Type = JobEventTypes.RunnerStarted, At = T0.AddSeconds(9), Data = Json(new { RunnerId = "runner-a-2", Backend = "local" }) },
            new() { JobId = job.Id, Type = JobEventTypes.CacheRestore, At = T0.AddSeconds(11), Data = Json(new { Key = "deps", Result = "miss", Bytes = 0L, Attempt = 2 }) },
            new() { JobId = job.Id, Type = JobEventTypes.RunnerDestroyed, At = T0.AddSeconds(16), Data = Json(new { RunnerId = "runner-a-2", Backend = "local", Teardown = gone, Attempt = 2 }) },
        };

        var p = JobStatementBuilder.Build(job, timeline, "https://ci.acme.example/eci", []).Predicate;
        Assert.Equal("runner-a-2", p.Runner.Id);
        Assert.Equal(T0.AddSeconds(16), p.Lifecycle.DestroyedAt);
        Assert.Equal("miss", Assert.Single(p.Caches.Restored).Result); // attempt 1's restore was not this build's
        var earlier = Assert.Single(p.EarlierAttempts!);
        Assert.Equal((1, "runner-a", "provisioner restarted", true), (earlier.Attempt, earlier.RunnerId, earlier.Reason, earlier.Teardown!.Passed));

        // A job run once says nothing of attempts (the field is left out of the JSON).
        var (once, onceTimeline) = FinishedJob();
        var statement = JobStatementBuilder.Build(once, onceTimeline, "https://ci.acme.example/eci", []);
        Assert.DoesNotContain("earlierAttempts", JsonSerializer.Serialize(statement, AttestationFormat.Json));
    }

    [Fact]
    public void A_federated_submitter_is_named_by_trust_policy_issuer_and_subject()
    {
        var (job, _) = FinishedJob("oidc:github:repo:acme/widgets:ref:refs/heads/main");
        var submitter = JobStatementBuilder.SubmitterOf(job, [new TrustPolicy { Name = "github", Issuer = "https://token.actions.githubusercontent.com" }]);

        Assert.Equal("oidc", submitter.Kind);
        Assert.Equal("github", submitter.TrustPolicy);
        Assert.Equal("https://token.actions.githubusercontent.com", submitter.Issuer);
        Assert.Equal("repo:acme/widgets:ref:refs/heads/main", submitter.Subject);
    }

    [Fact]
    public void The_broker_signs_only_job_statements_about_the_job_named()
    {
        var (job, timeline) = FinishedJob();
        var json = JsonSerializer.SerializeToNode(JobStatementBuilder.Build(job, timeline, "b", []), AttestationFormat.Json)!.AsObject();

        Assert.Null(BrokerAttestationSigner.Problem(json, job.Id));
        Assert.Contains("invocationId", BrokerAttestationSigner.Problem(json, Guid.NewGuid()));
        var other = json.DeepClone().AsObject();
        other["predicateType"] = "https://slsa.dev/provenance/v1";
        Assert.Contains("predicateType", BrokerAttestationSigner.Problem(other, job.Id));
        other = json.DeepClone().AsObject();
        other["_type"] = 1;
        Assert.Contains("_type", BrokerAttestationSigner.Problem(other, job.Id));
    }

    [Theory]
    [InlineData("secrets=[NPM_TOKEN]", new[] { "NPM_TOKEN" })]
    [InlineData("secrets=[A,B]", new[] { "A", "B" })]
    [InlineData("secrets=[]", new string[0])]
    [InlineData(null, new string[0])]
    public void The_secrets_granted_are_read_from_the_audit_line(string? detail, string[] names) =>
        Assert.Equal(names, BrokerAttestationSigner.GrantedNames(detail));
}
