using System.Text.Json.Serialization;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Model;

namespace EphemeralCI.Intake.Apis;

// The intake's HTTP shapes. JobStatus is written snake_case ("timed_out") by a converter on
// these properties, not by global JSON options, so other modules in the same process are unaffected.

public sealed record JobLinks(string Self, string Logs, string Events, string Cancel)
{
    public static JobLinks For(Guid id) => new(
        $"/api/v1/jobs/{id}", $"/api/v1/jobs/{id}/logs", $"/api/v1/jobs/{id}/events", $"/api/v1/jobs/{id}/cancel");
}

public sealed record JobAccepted(
    Guid Id,
    [property: JsonConverter(typeof(SnakeCaseJobStatusConverter))] JobStatus Status,
    JobLinks Links);

public sealed record JobSummary(
    Guid Id,
    string? Name,
    string Repository,
    string Ref,
    string CommitSha,
    string RunnerTemplate,
    [property: JsonConverter(typeof(SnakeCaseJobStatusConverter))] JobStatus Status,
    string? StatusReason,
    int? ExitCode,
    int TimeoutSeconds,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    JobLinks Links,
    /// <summary>SHA-256 of the runner template the runner was made from; null until the runner starts.</summary>
    string? RunnerTemplateHash = null,
    /// <summary>The deployment environment the job targets, if any.</summary>
    string? Environment = null,
    /// <summary>Who vouched for the job's identity: <c>api-key:{id}</c> or <c>oidc:{trust policy}:{subject}</c>.</summary>
    string? SubmittedBy = null,
    /// <summary>1, or which attempt runs now after a lost runner (<c>retry.infrastructure</c>).</summary>
    int Attempt = 1)
{
    public static JobSummary From(Job j) => new(
        j.Id, j.Name, j.Repository, j.Ref, j.CommitSha, j.RunnerTemplate, j.Status, j.StatusReason, j.ExitCode,
        j.TimeoutSeconds, j.CreatedAt, j.StartedAt, j.FinishedAt, JobLinks.For(j.Id), j.RunnerTemplateHash, j.Environment, j.SubmittedBy, j.Attempt);
}

/// <summary>A page of jobs. <paramref name="Page"/> and <paramref name="TotalCount"/> only for the deprecated <c>?page=</c>; <paramref name="NextCursor"/> is null on the last page.</summary>
public sealed record JobPage(IReadOnlyList<JobSummary> Items, int? Page, int PageSize, int? TotalCount, string? NextCursor);

public sealed record JobEventItem(string Type, DateTimeOffset At, string? Message, System.Text.Json.JsonElement? Data);

public sealed record JobTimeline(Guid JobId, IReadOnlyList<JobEventItem> Events);

/// <param name="Repositories">Repository globs the key may claim and see; required unless the key is admin.</param>
/// <param name="Refs">Ref globs the key may claim; default every ref (<c>**</c>).</param>
/// <param name="Templates">Runner templates the key may use; default any.</param>
/// <param name="Environments">Environments the key may name; default none.</param>
public sealed record CreateApiKeyRequest(
    string? Name, IReadOnlyList<string>? Scopes,
    IReadOnlyList<string>? Repositories = null, IReadOnlyList<string>? Refs = null,
    IReadOnlyList<string>? Templates = null, IReadOnlyList<string>? Environments = null);

/// <param name="Bound">False for a non-admin key made before keys were bound to repositories: it is refused until replaced.</param>
public sealed record ApiKeySummary(
    Guid Id, string Name, string Prefix, IReadOnlyList<string> Scopes,
    DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt, DateTimeOffset? LastUsedAt,
    IReadOnlyList<string> Repositories, IReadOnlyList<string> Refs, IReadOnlyList<string> Templates, IReadOnlyList<string> Environments,
    bool Bound)
{
    public static ApiKeySummary From(ApiKey k) => new(k.Id, k.Name, k.Prefix, k.Scopes, k.CreatedAt, k.RevokedAt, k.LastUsedAt,
        k.Repositories, k.Refs, k.Templates, k.Environments, k.Scopes.Contains(Auth.ApiKeyScopes.Admin) || k.Repositories.Count > 0);
}

/// <summary>The answer to creating a key: the only time the key itself is ever shown.</summary>
public sealed record CreatedApiKey(
    Guid Id, string Name, string Prefix, IReadOnlyList<string> Scopes, DateTimeOffset CreatedAt, string Key,
    IReadOnlyList<string> Repositories, IReadOnlyList<string> Refs, IReadOnlyList<string> Templates, IReadOnlyList<string> Environments);

public sealed record SessionLinks(string Self, string Commands, string Logs, string Events)
{
    public static SessionLinks For(Guid id) => new(
        $"/api/v1/sessions/{id}", $"/api/v1/sessions/{id}/commands", $"/api/v1/jobs/{id}/logs", $"/api/v1/jobs/{id}/events");
}

/// <summary>A session is a job (its id is the job's: its log, timeline and attestation are under /api/v1/jobs/{id}).</summary>
public sealed record SessionSummary(
    Guid Id,
    string Repository,
    string Ref,
    string CommitSha,
    string RunnerTemplate,
    [property: JsonConverter(typeof(SnakeCaseJobStatusConverter))] JobStatus Status,
    string? StatusReason,
    int? ExitCode,
    int TimeoutSeconds,
    int IdleTimeoutSeconds,
    int Commands,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    SessionLinks Links)
{
    public static SessionSummary From(Job j)
    {
        var spec = j.ParsedSpec();
        return new(j.Id, j.Repository, j.Ref, j.CommitSha, j.RunnerTemplate, j.Status, j.StatusReason, j.ExitCode, j.TimeoutSeconds,
            spec.Session?.IdleTimeoutSeconds ?? SessionSpec.DefaultIdleTimeoutSeconds, spec.Steps?.Count ?? 0, j.CreatedAt, j.StartedAt, j.FinishedAt, SessionLinks.For(j.Id));
    }
}
