namespace EphemeralCI.Contracts.Admin;

/// <summary>A secret as an operator may see it: name, version and policy — never its value.</summary>
public sealed record SecretSummary(
    string Name, int CurrentVersion, IReadOnlyList<string> Repositories, IReadOnlyList<string> Refs, string? Environment,
    DateTimeOffset UpdatedAt, string UpdatedBy);

/// <summary>One line of the broker's audit trail (issued, granted, refused, changed …), without the token id.</summary>
public sealed record SecretAuditLine(
    long Id, DateTimeOffset At, string Actor, string Action, string? Secret, Guid? JobId, string? Repository, string? Ref, string? Detail);

/// <summary>
/// The secrets broker's administration data for a module in the same process to show (the all-in-one server's
/// web UI, to admin keys only): the same rows as its admin API, read-only.
/// </summary>
public interface ISecretsAdminView
{
    Task<IReadOnlyList<SecretSummary>> SecretsAsync(CancellationToken ct);

    /// <summary>The newest <paramref name="limit"/> audit lines, newest first.</summary>
    Task<IReadOnlyList<SecretAuditLine>> RecentAuditAsync(int limit, CancellationToken ct);
}
