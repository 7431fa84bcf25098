using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.ChangeTracking;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace EphemeralCI.Persistence;

/// <summary>
/// SQLite has no server-maintained row version (Postgres has xmin), so the version is bumped here on
/// every update. EF then writes <c>… WHERE version = @original</c>, and a concurrent change still ends
/// in <see cref="DbUpdateConcurrencyException"/> exactly as on Postgres.
/// </summary>
internal sealed class SqliteRowVersionInterceptor : SaveChangesInterceptor
{
    public static readonly SqliteRowVersionInterceptor Instance = new();

    public override InterceptionResult<int> SavingChanges(DbContextEventData eventData, InterceptionResult<int> result)
    {
        Bump(eventData.Context);
        return result;
    }

    public override ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        Bump(eventData.Context);
        return ValueTask.FromResult(result);
    }

    private static void Bump(DbContext? context)
    {
        if (context is null) return;
        context.ChangeTracker.DetectChanges();
        foreach (var entry in context.ChangeTracker.Entries())
        {
            if (entry.State != EntityState.Modified) continue;
            foreach (var property in entry.Properties)
            {
                if (property.Metadata.FindAnnotation(ProviderModelAdapter.AppManagedRowVersion) is null) continue;
                Increment(property);
            }
        }
    }

    private static void Increment(PropertyEntry property)
    {
        property.CurrentValue = property.OriginalValue switch
        {
            uint u => unchecked(u + 1),
            int i => unchecked(i + 1),
            long l => unchecked(l + 1),
            ulong ul => unchecked(ul + 1),
            _ => throw new NotSupportedException($"Row version of type {property.Metadata.ClrType} on {property.Metadata.DeclaringType.DisplayName()}"),
        };
    }
}
