using System.Net.Sockets;
using EphemeralCI.Persistence;
using Microsoft.Data.Sqlite;
using Npgsql;
using Xunit;

namespace EphemeralCI.UnitTests.Persistence;

/// <summary>Which start-up failures are waited out and which stop the host at once.</summary>
public sealed class ModuleDatabaseMigrationTests
{
    public static TheoryData<Exception, bool> Failures => new()
    {
        { new NpgsqlException("Failed to connect to 127.0.0.1:5432", new SocketException((int)SocketError.ConnectionRefused)), true },
        { new PostgresException("the database system is starting up", "FATAL", "FATAL", "57P03"), true },
        { new PostgresException("connection failure", "FATAL", "FATAL", "08006"), true },
        { new PostgresException("sorry, too many clients already", "FATAL", "FATAL", "53300"), true },
        { new InvalidOperationException("outer", new TimeoutException("inner")), true },
        { new SqliteException("database is locked", 5), true },
        { new PostgresException("relation \"jobs\" does not exist", "ERROR", "ERROR", "42P01"), false },
        { new PostgresException("password authentication failed", "FATAL", "FATAL", "28P01"), false },
        { new SqliteException("no such table: jobs", 1), false },
        { new InvalidOperationException("a migration is broken"), false },
    };

    [Theory]
    [MemberData(nameof(Failures))]
    public void Only_an_unreachable_database_is_waited_for(Exception failure, bool waitedFor) =>
        Assert.Equal(waitedFor, ModuleDatabaseMigration.IsUnreachable(failure));
}
