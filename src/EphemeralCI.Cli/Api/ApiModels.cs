using System.Text.Json;

namespace EphemeralCI.Cli.Api;

// The intake's HTTP shapes as the CLI reads them (src/EphemeralCI.Intake/Apis/IntakeApiModels.cs).
// Kept here rather than referencing the server module: the tool must not carry the server with it.
// Statuses stay strings ("timed_out") so a status added later is shown, not a crash.

public sealed record JobLinks(string Self, string Logs, string Events, string Cancel);

public sealed record JobAccepted(Guid Id, string Status, JobLinks? Links);

public sealed record JobSummary(
    Guid Id,
    string? Name,
    string Repository,
    string Ref,
    string CommitSha,
    string RunnerTemplate,
    string Status,
    string? StatusReason,
    int? ExitCode,
    int TimeoutSeconds,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    int Attempt = 1);

public sealed record JobPage(IReadOnlyList<JobSummary> Items, int? Page, int PageSize, int? TotalCount, string? NextCursor = null);

public sealed record JobEventItem(string Type, DateTimeOffset At, string? Message, JsonElement? Data);

public sealed record JobTimeline(Guid JobId, IReadOnlyList<JobEventItem> Events);

public sealed record CreateApiKeyRequest(
    string Name, IReadOnlyList<string> Scopes,
    IReadOnlyList<string>? Repositories = null, IReadOnlyList<string>? Refs = null,
    IReadOnlyList<string>? Templates = null, IReadOnlyList<string>? Environments = null);

// Bindings are nullable: an older server does not send them.
public sealed record ApiKeySummary(
    Guid Id, string Name, string Prefix, IReadOnlyList<string> Scopes,
    DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt, DateTimeOffset? LastUsedAt,
    IReadOnlyList<string>? Repositories = null, IReadOnlyList<string>? Refs = null,
    IReadOnlyList<string>? Templates = null, IReadOnlyList<string>? Environments = null, bool? Bound = null);

public sealed record CreatedApiKey(
    Guid Id, string Name, string Prefix, IReadOnlyList<string> Scopes, DateTimeOffset CreatedAt, string Key,
    IReadOnlyList<string>? Repositories = null, IReadOnlyList<string>? Refs = null,
    IReadOnlyList<string>? Templates = null, IReadOnlyList<string>? Environments = null);

/// <summary>The `end` event of a followed log: the job's final state.</summary>
public sealed record LogEnd(string Status, int? ExitCode, string? Reason);

/// <summary>A typed answer with the exact JSON the server sent, for --json.</summary>
public sealed record ApiResult<T>(T Value, string Json);

/// <summary>RFC 9457 problem details, as much of them as the server sent.</summary>
public sealed record Problem(int Status, string? Title, string? Detail, IReadOnlyDictionary<string, string[]> Errors, string? RequiredScope)
{
    public static Problem Parse(int status, string? body)
    {
        string? title = null, detail = null, scope = null;
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (!string.IsNullOrWhiteSpace(body))
        {
            try
            {
                using var doc = JsonDocument.Parse(body);
                var root = doc.RootElement;
                if (root.ValueKind == JsonValueKind.Object)
                {
                    title = Text(root, "title");
                    detail = Text(root, "detail");
                    scope = Text(root, "requiredScope");
                    if (root.TryGetProperty("errors", out var e) && e.ValueKind == JsonValueKind.Object)
                    {
                        foreach (var field in e.EnumerateObject())
                        {
                            errors[field.Name] = field.Value.ValueKind == JsonValueKind.Array
                                ? field.Value.EnumerateArray().Select(v => v.ToString()).ToArray()
                                : [field.Value.ToString()];
                        }
                    }
                }
            }
            catch (JsonException)
            {
                // Not problem details (a proxy's HTML page, say): the status code alone has to do.
            }
        }
        return new Problem(status, title, detail, errors, scope);
    }

    private static string? Text(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
