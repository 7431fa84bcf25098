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
    string? RunnerTemplateHash = null)
{
    public static JobSummary From(Job j) => new(
        j.Id, j.Name, j.Repository, j.Ref, j.CommitSha, j.RunnerTemplate, j.Status, j.StatusReason, j.ExitCode,
        j.TimeoutSeconds, j.CreatedAt, j.StartedAt, j.FinishedAt, JobLinks.For(j.Id), j.RunnerTemplateHash);
}

public sealed record JobPage(IReadOnlyList<JobSummary> Items, int Page, int PageSize, int TotalCount);

public sealed record JobEventItem(string Type, DateTimeOffset At, string? Message, System.Text.Json.JsonElement? Data);

public sealed record JobTimeline(Guid JobId, IReadOnlyList<JobEventItem> Events);

public sealed record CreateApiKeyRequest(string? Name, IReadOnlyList<string>? Scopes);

public sealed record ApiKeySummary(
    Guid Id, string Name, string Prefix, IReadOnlyList<string> Scopes,
    DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt, DateTimeOffset? LastUsedAt)
{
    public static ApiKeySummary From(ApiKey k) => new(k.Id, k.Name, k.Prefix, k.Scopes, k.CreatedAt, k.RevokedAt, k.LastUsedAt);
}

/// <summary>The answer to creating a key: the only time the key itself is ever shown.</summary>
public sealed record CreatedApiKey(Guid Id, string Name, string Prefix, IReadOnlyList<string> Scopes, DateTimeOffset CreatedAt, string Key);
