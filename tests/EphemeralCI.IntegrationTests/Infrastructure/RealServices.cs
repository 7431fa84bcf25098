using Npgsql;

namespace EphemeralCI.Tests.Infrastructure;

/// <summary>
/// The real Postgres, Redis, RabbitMQ and S3 emulator started by <c>eng/services.sh start</c>,
/// found through the ECI_* variables that script exports. Missing services fail the test with the
/// command to run, rather than skipping it silently.
/// </summary>
public static class RealServices
{
    public static string Postgres => Require("ECI_POSTGRES");
    public static string Redis => Require("ECI_REDIS");
    public static string RabbitMq => Require("ECI_RABBITMQ");
    public static string S3 => Require("ECI_S3");

    private static string Require(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException(
                $"Environment variable {variable} is not set: start the real services with `eval \"$(eng/services.sh start)\"` (or run eng/test.sh).");

    /// <summary>Creates an empty database of its own for one test class and returns its connection string.</summary>
    public static async Task<string> CreateDatabaseAsync(string prefix)
    {
        var name = $"eci_{prefix}_{Guid.NewGuid():N}"[..40].ToLowerInvariant();
        await using var conn = new NpgsqlConnection(Postgres);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", conn);
        await cmd.ExecuteNonQueryAsync();
        return new NpgsqlConnectionStringBuilder(Postgres) { Database = name }.ConnectionString;
    }
}
