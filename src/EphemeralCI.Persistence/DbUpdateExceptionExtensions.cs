using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EphemeralCI.Persistence;

public static class DbUpdateExceptionExtensions
{
    private const int SqliteConstraint = 19;
    private const int SqliteConstraintPrimaryKey = 1555;
    private const int SqliteConstraintUnique = 2067;

    /// <summary>
    /// True when the save failed on a unique index or key (a race we expect and resolve); with
    /// <paramref name="indexName"/>, only on that index. Postgres names the constraint; SQLite names
    /// the columns ("UNIQUE constraint failed: jobs.a, jobs.b"), which are matched against the index's.
    /// </summary>
    public static bool IsUniqueViolation(this DbUpdateException ex, string? indexName = null)
    {
        switch (ex.InnerException)
        {
            case PostgresException { SqlState: PostgresErrorCodes.UniqueViolation } pg:
                return indexName is null || string.Equals(pg.ConstraintName, indexName, StringComparison.Ordinal);
            case SqliteException { SqliteErrorCode: SqliteConstraint } sqlite
                when sqlite.SqliteExtendedErrorCode is SqliteConstraintUnique or SqliteConstraintPrimaryKey:
                return indexName is null || SqliteMessageNamesIndex(ex, sqlite.Message, indexName);
            default:
                return false;
        }
    }

    private static bool SqliteMessageNamesIndex(DbUpdateException ex, string message, string indexName)
    {
        var model = ex.Entries.FirstOrDefault()?.Context.Model;
        var index = model?.GetEntityTypes().SelectMany(e => e.GetIndexes()).FirstOrDefault(i => i.GetDatabaseName() == indexName);
        if (index is null) return false;

        var table = index.DeclaringEntityType.GetTableName();
        var marker = message.IndexOf("failed: ", StringComparison.Ordinal);
        if (marker < 0) return false;
        var failed = message[(marker + "failed: ".Length)..]
            .Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(c => c.TrimEnd('\'', '.'))
            .ToHashSet(StringComparer.Ordinal);
        var columns = index.Properties.Select(p => $"{table}.{p.GetColumnName()}").ToHashSet(StringComparer.Ordinal);
        return failed.SetEquals(columns);
    }
}
