using Microsoft.Data.Sqlite;

namespace EphemeralCI.Persistence;

internal static class SqliteConnectionStrings
{
    /// <summary>
    /// A file database shared by this process's pooled connections. A long default timeout makes
    /// Microsoft.Data.Sqlite wait out another writer (SQLITE_BUSY) instead of failing the request.
    /// </summary>
    public static string For(string path) => new SqliteConnectionStringBuilder
    {
        DataSource = path,
        Mode = SqliteOpenMode.ReadWriteCreate,
        Pooling = true,
        DefaultTimeout = 30,
    }.ToString();
}
