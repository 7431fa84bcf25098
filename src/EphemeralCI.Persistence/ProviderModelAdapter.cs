using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace EphemeralCI.Persistence;

/// <summary>
/// The models are written for Postgres. Called last in each module's <c>OnModelCreating</c>, this
/// adapts the few things SQLite lacks, so one model (and one set of entity configurations) serves both.
/// </summary>
public static class ProviderModelAdapter
{
    internal const string AppManagedRowVersion = "EphemeralCI:AppManagedRowVersion";

    // UTC ticks as an integer: SQLite cannot order or compare DateTimeOffset stored as text.
    private static readonly ValueConverter<DateTimeOffset, long> UtcTicks =
        new(v => v.UtcTicks, v => new DateTimeOffset(v, TimeSpan.Zero));

    public static void AdaptToProvider(this ModelBuilder modelBuilder, DatabaseFacade database)
    {
        if (!database.IsSqlite()) return;

        foreach (var entity in modelBuilder.Model.GetEntityTypes())
        {
            foreach (var property in entity.GetProperties())
            {
                // jsonb/json columns hold JSON text.
                if (property.GetColumnType() is { } type && type.StartsWith("json", StringComparison.OrdinalIgnoreCase))
                {
                    property.SetColumnType("TEXT");
                }

                var clr = Nullable.GetUnderlyingType(property.ClrType) ?? property.ClrType;
                if (clr == typeof(DateTimeOffset) && property.GetValueConverter() is null)
                {
                    property.SetValueConverter(UtcTicks);
                }

                // A database-generated row version (Postgres xmin) becomes one this process maintains.
                if (property.IsConcurrencyToken && property.ValueGenerated == ValueGenerated.OnAddOrUpdate)
                {
                    property.ValueGenerated = ValueGenerated.Never;
                    property.SetAnnotation(AppManagedRowVersion, true);
                }
            }
        }
    }
}
