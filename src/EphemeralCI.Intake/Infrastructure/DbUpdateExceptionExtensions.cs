using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EphemeralCI.Intake.Infrastructure;

internal static class DbUpdateExceptionExtensions
{
    /// <summary>True when the save failed on the named unique index (a race we expect and resolve).</summary>
    public static bool IsUniqueViolation(this DbUpdateException ex, string indexName) =>
        ex.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation } pg
        && string.Equals(pg.ConstraintName, indexName, StringComparison.Ordinal);
}
