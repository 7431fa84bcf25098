using System.Data.Common;
using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.ChangeTracking;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace EphemeralCI.Persistence;

/// <summary>
/// Runs <see cref="OnCommitted"/> once a SaveChanges whose changes <see cref="Concerns"/> is committed:
/// at once for a save in its own transaction, at the caller's commit for a save inside the caller's
/// transaction (nothing is visible to other connections before), never for a failed save or a
/// rollback. For "tell whoever waits on these rows", written once instead of after every SaveChanges.
/// </summary>
public abstract class AfterCommitInterceptor : ISaveChangesInterceptor, IDbTransactionInterceptor
{
    // Per context instance (pooled contexts are reused: the flag is cleared whenever it is acted on).
    private readonly ConditionalWeakTable<DbContext, StrongBox<bool>> _pending = new();

    /// <summary>Whether the changes about to be saved are ones to tell about. Called before the save.</summary>
    protected abstract bool Concerns(ChangeTracker changes);

    /// <summary>Called after the commit; must not throw or block.</summary>
    protected abstract void OnCommitted();

    public InterceptionResult<int> SavingChanges(DbContextEventData eventData, InterceptionResult<int> result)
    {
        Remember(eventData.Context);
        return result;
    }

    public ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        Remember(eventData.Context);
        return ValueTask.FromResult(result);
    }

    public int SavedChanges(SaveChangesCompletedEventData eventData, int result)
    {
        Committed(eventData.Context, afterSave: true);
        return result;
    }

    public ValueTask<int> SavedChangesAsync(SaveChangesCompletedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        Committed(eventData.Context, afterSave: true);
        return ValueTask.FromResult(result);
    }

    public void SaveChangesFailed(DbContextErrorEventData eventData) => Forget(eventData.Context);

    public Task SaveChangesFailedAsync(DbContextErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        Forget(eventData.Context);
        return Task.CompletedTask;
    }

    public void TransactionCommitted(DbTransaction transaction, TransactionEndEventData eventData) => Committed(eventData.Context, afterSave: false);

    public Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Committed(eventData.Context, afterSave: false);
        return Task.CompletedTask;
    }

    public void TransactionRolledBack(DbTransaction transaction, TransactionEndEventData eventData) => Forget(eventData.Context);

    public Task TransactionRolledBackAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Forget(eventData.Context);
        return Task.CompletedTask;
    }

    private void Remember(DbContext? context)
    {
        if (context is null || !Concerns(context.ChangeTracker)) return;
        _pending.GetOrCreateValue(context).Value = true;
    }

    private void Committed(DbContext? context, bool afterSave)
    {
        if (context is null || !_pending.TryGetValue(context, out var pending) || !pending.Value) return;
        // A save inside the caller's transaction is not visible yet: wait for its commit.
        if (afterSave && context.Database.CurrentTransaction is not null) return;
        pending.Value = false;
        OnCommitted();
    }

    private void Forget(DbContext? context)
    {
        if (context is not null && _pending.TryGetValue(context, out var pending)) pending.Value = false;
    }
}
