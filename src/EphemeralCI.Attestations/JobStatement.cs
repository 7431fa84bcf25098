using System.Text.Json;
using System.Text.Json.Serialization;
using EphemeralCI.Contracts.Messages;

namespace EphemeralCI.Attestations;

/// <summary>The names this attestation is known by; see docs/attestation.md.</summary>
public static class AttestationFormat
{
    /// <summary>The DSSE payload type of an in-toto statement.</summary>
    public const string PayloadType = "application/vnd.in-toto+json";
    public const string StatementType = "https://in-toto.io/Statement/v1";
    /// <summary>Versioned: a change of meaning gets a new URI (v2), a new optional field does not.</summary>
    public const string PredicateType = "https://ephemeralci.dev/attestation/job/v1";
    /// <summary>SLSA's buildType: how to read <c>externalParameters</c>.</summary>
    public const string BuildType = "https://ephemeralci.dev/attestation/job/v1#build";
    /// <summary>The builder id unless <c>Attestations:BuilderId</c> names this installation.</summary>
    public const string DefaultBuilderId = "https://ephemeralci.dev/builder/v1";
    /// <summary>The subject's digest algorithm for a commit (in-toto's DigestSet).</summary>
    public const string GitCommitDigest = "gitCommit";

    /// <summary>Web defaults (camelCase), nulls written (a verifier sees "not revoked" as null, not as missing).</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
}

/// <summary>An in-toto Statement v1 whose predicate is a <see cref="JobPredicate"/>.</summary>
public sealed record JobStatement(
    [property: JsonPropertyName("_type")] string Type,
    [property: JsonPropertyName("subject")] IReadOnlyList<ResourceDescriptor> Subject,
    [property: JsonPropertyName("predicateType")] string PredicateType,
    [property: JsonPropertyName("predicate")] JobPredicate Predicate)
{
    public static JobStatement For(JobPredicate predicate) => new(
        AttestationFormat.StatementType,
        [new ResourceDescriptor(predicate.BuildDefinition.ExternalParameters.Repository,
            new Dictionary<string, string> { [AttestationFormat.GitCommitDigest] = predicate.BuildDefinition.ExternalParameters.CommitSha })],
        AttestationFormat.PredicateType,
        predicate);
}

/// <summary>in-toto's ResourceDescriptor: a name and its digests.</summary>
public sealed record ResourceDescriptor(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("digest")] IReadOnlyDictionary<string, string> Digest);

/// <summary>
/// What a job's runner was, got and left. The first two fields follow SLSA Provenance v1
/// (<c>buildDefinition</c>, <c>runDetails.builder.id</c>, <c>runDetails.metadata</c>) so its tooling reads
/// the common part; the rest is EphemeralCI's own. <see cref="Secrets"/> is filled in by the secrets
/// broker, which alone knows what it issued, when it signs.
/// </summary>
public sealed record JobPredicate(
    BuildDefinition BuildDefinition,
    RunDetails RunDetails,
    JobRunner Runner,
    JobLifecycle Lifecycle,
    TeardownReport? Teardown,
    IReadOnlyList<IssuedSecret>? Secrets,
    JobCaches Caches,
    JobOutcome Outcome,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    IReadOnlyList<EarlierAttempt>? EarlierAttempts = null);

/// <summary>
/// A runner of the same job that was lost before the attempt this statement is of (<c>retry.infrastructure</c>):
/// it ran the job's code with the job's token, so its teardown is part of the proof. Absent for a job run once.
/// </summary>
public sealed record EarlierAttempt(int Attempt, string? RunnerId, string? Backend, string? Reason, DateTimeOffset? DestroyedAt, TeardownReport? Teardown);

public sealed record BuildDefinition(string BuildType, ExternalParameters ExternalParameters, InternalParameters InternalParameters);

/// <summary>What the submitter asked for, as the intake verified it.</summary>
public sealed record ExternalParameters(string Repository, string Ref, string CommitSha, string RunnerTemplate, string? Environment, string? JobName);

/// <summary>Who vouched for the job: an API key (<c>kind: api-key</c>, its id) or a federated OIDC token (trust policy, issuer, subject).</summary>
public sealed record InternalParameters(Submitter Submitter);

public sealed record Submitter(string Kind, string? Identity, string? KeyId = null, string? TrustPolicy = null, string? Issuer = null, string? Subject = null);

public sealed record RunDetails(Builder Builder, BuildMetadata Metadata);

/// <param name="Version">Component versions, e.g. <c>{"ephemeralci": "1.2.3"}</c>.</param>
public sealed record Builder(string Id, IReadOnlyDictionary<string, string> Version);

/// <param name="InvocationId">The job id.</param>
public sealed record BuildMetadata(string InvocationId, DateTimeOffset? StartedOn, DateTimeOffset? FinishedOn);

/// <param name="Template">The runner template's name and content digest (<c>sha256:…</c>).</param>
public sealed record JobRunner(string? Id, string? Backend, RunnerTemplateRef Template);

public sealed record RunnerTemplateRef(string Name, string? Digest);

public sealed record JobLifecycle(DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, DateTimeOffset? DestroyedAt);

/// <summary>A secret the broker gave the job: by name and version, never its value; when the job's token was revoked.</summary>
public sealed record IssuedSecret(string Name, int? Version, DateTimeOffset IssuedAt, DateTimeOffset? RevokedAt);

/// <param name="RecordedBy">
/// Who vouches for the lists: <c>cache</c> — the dependency cache recorded each restore lookup and save it answered
/// for this attempt's job token (also those a step made itself, e.g. with <c>@actions/cache</c>); <c>runner</c> — the
/// runner agent's own report of the job's <c>caches</c> (an installation whose intake cannot ask its cache). Null in
/// statements made before this field: the runner's report.
/// </param>
public sealed record JobCaches(IReadOnlyList<CacheUse> Restored, IReadOnlyList<CacheUse> Saved, string? RecordedBy = null)
{
    public const string ByCache = "cache";
    public const string ByRunner = "runner";
}

/// <param name="Scope">Whose entries (repository@ref): a save's is the job's own; a restore's the job's ref or the default branch's it may read, as the cache answered (null if not said).</param>
/// <param name="Sha256">The archive's SHA-256 (hex); null on a miss.</param>
public sealed record CacheUse(string Key, string Result, string? MatchedKey, string? Scope, string? Sha256, long SizeBytes);

public sealed record JobOutcome(string Status, int? ExitCode, string? Reason);
