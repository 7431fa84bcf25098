using EphemeralCI.Contracts.Admin;
using EphemeralCI.SecretsBroker.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.SecretsBroker.Audit;

/// <summary>The admin API's secret list and audit trail for an in-process reader (<see cref="ISecretsAdminView"/>); never a value.</summary>
internal sealed class SecretsAdminView(SecretsDbContext db) : ISecretsAdminView
{
    public async Task<IReadOnlyList<SecretSummary>> SecretsAsync(CancellationToken ct) =>
        (await db.Secrets.AsNoTracking().OrderBy(s => s.Name).ToListAsync(ct))
            .Select(s => new SecretSummary(s.Name, s.CurrentVersion, s.RepositoryPatterns, s.RefPatterns, s.Environment, s.UpdatedAt, s.UpdatedBy))
            .ToList();

    public async Task<IReadOnlyList<SecretAuditLine>> RecentAuditAsync(int limit, CancellationToken ct) =>
        (await db.AuditEntries.AsNoTracking().OrderByDescending(e => e.Id).Take(limit).ToListAsync(ct))
            .Select(e => new SecretAuditLine(e.Id, e.At, e.Actor, e.Action, e.SecretName, e.JobId, e.Repository, e.Ref, e.Detail))
            .ToList();
}
