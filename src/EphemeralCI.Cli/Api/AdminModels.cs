namespace EphemeralCI.Cli.Api;

// The secrets broker's admin API (src/EphemeralCI.SecretsBroker/Apis/AdminApi.cs, AuditApi.cs) and the
// cache's admin API (src/EphemeralCI.Cache/Apis/CacheAdminApi.cs) as the CLI reads them. Copied, not
// referenced, for the same reason as ApiModels.cs: the tool must not carry the server with it.

/// <summary>Body of PUT /api/v1/admin/secrets/{name}. A null value keeps the current version and changes only the policy.</summary>
public sealed record PutSecretRequest(string? Value, IReadOnlyList<string> Repositories, IReadOnlyList<string> Refs, string? Environment);

public sealed record SecretVersionInfo(int Version, DateTimeOffset CreatedAt, string CreatedBy, string KeyId);

/// <summary>Everything about a secret except its value (the broker never answers with a value).</summary>
public sealed record SecretMetadata(
    string Name, int CurrentVersion, IReadOnlyList<string> Repositories, IReadOnlyList<string> Refs, string? Environment,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, string UpdatedBy, IReadOnlyList<SecretVersionInfo>? Versions = null);

public sealed record AuditEntry(
    long Id, DateTimeOffset At, string Actor, string Action, string? Secret, Guid? JobId, string? Repository, string? Ref, string? TokenId, string? Detail);

public sealed record RepositoryUsage(string Repository, int Entries, int Reserved, int Quarantined, long Bytes, long QuotaBytes);

public sealed record CacheEntryView(
    long Id, string Repository, string Scope, string Key, string Version, string State,
    long SizeBytes, string? Sha256, DateTimeOffset CreatedAt, DateTimeOffset? CommittedAt, DateTimeOffset LastAccessedAt);
