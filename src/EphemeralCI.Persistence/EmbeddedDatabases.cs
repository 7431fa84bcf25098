namespace EphemeralCI.Persistence;

/// <summary>
/// Registered by the embedded all-in-one server: modules without a connection string keep their
/// data in <c>{Directory}/{connectionName}.db</c>, migrated by the SQLite migrations that live in
/// <see cref="MigrationsAssembly"/> (a module's own migrations are Postgres's).
/// </summary>
public sealed record EmbeddedDatabases(string Directory, string MigrationsAssembly)
{
    public string PathFor(string connectionName) => Path.Combine(Directory, connectionName + ".db");
}
