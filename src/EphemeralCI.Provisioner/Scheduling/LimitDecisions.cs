using EphemeralCI.Provisioner.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Provisioner.Scheduling;

/// <summary>
/// Limit decisions are taken one at a time — within this process (admissions and the pump) and across
/// provisioner instances on one Postgres database (an advisory lock) — so two decisions never both
/// take the last slot. Never held while waiting for a job's lock.
/// </summary>
public sealed class LimitDecisions
{
    // Any constant ("ECIPROV1"): the one advisory lock under which every instance counts runners and admits one.
    private const long DecisionLockKey = 4990913421383783985;
    private readonly SemaphoreSlim _inProcess = new(1, 1);

    private static readonly RunnerState[] Holding = [RunnerState.Provisioning, RunnerState.Running, RunnerState.Finished];

    /// <summary>Holds the decision until disposed; <paramref name="db"/> is the context the decision reads and writes with.</summary>
    public async Task<IAsyncDisposable> EnterAsync(ProvisionerDbContext db, CancellationToken ct)
    {
        await _inProcess.WaitAsync(ct);
        try
        {
            return new Decision(this, db, await LockAcrossInstancesAsync(db, ct));
        }
        catch
        {
            _inProcess.Release();
            throw;
        }
    }

    /// <summary>Runners holding a slot now, every instance's, for the given backends and repositories (null: all).</summary>
    public static async Task<RunnerCounts> CountHoldingAsync(ProvisionerDbContext db, string? backend, string? repository, bool all, CancellationToken ct)
    {
        var holding = db.Runners.Where(r => Holding.Contains(r.State));
        var perBackend = await (all ? holding : holding.Where(r => r.Backend == backend))
            .GroupBy(r => r.Backend).Select(g => new { g.Key, Count = g.Count() }).ToListAsync(ct);
        var perRepository = await (all ? holding : holding.Where(r => r.Repository == repository))
            .GroupBy(r => r.Repository).Select(g => new { g.Key, Count = g.Count() }).ToListAsync(ct);
        return new(perBackend.ToDictionary(x => x.Key ?? "", x => x.Count), perRepository.ToDictionary(x => x.Key ?? "", x => x.Count));
    }

    /// <summary>
    /// On Postgres (several instances may share it), the lock held on the context's connection until
    /// released; null on SQLite, which one process owns. A session lock rather than a transaction's: the
    /// retrying execution strategy refuses user transactions, and a connection that breaks releases it with the session.
    /// </summary>
    private static async Task<ProvisionerDbContext?> LockAcrossInstancesAsync(ProvisionerDbContext db, CancellationToken ct)
    {
        if (db.Database.ProviderName?.Contains("Npgsql", StringComparison.Ordinal) != true) return null;
        await db.Database.OpenConnectionAsync(ct);
        try
        {
            await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_lock({DecisionLockKey})", ct);
        }
        catch
        {
            await db.Database.CloseConnectionAsync();
            throw;
        }
        return db;
    }

    private sealed class Decision(LimitDecisions owner, ProvisionerDbContext db, ProvisionerDbContext? locked) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            try
            {
                if (locked is not null)
                {
                    try
                    {
                        await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_unlock({DecisionLockKey})", CancellationToken.None);
                    }
                    finally
                    {
                        await db.Database.CloseConnectionAsync();
                    }
                }
            }
            finally
            {
                owner._inProcess.Release();
            }
        }
    }
}
