using System.Net.Http.Headers;
using System.Text;
using Npgsql;

namespace EphemeralCI.IntegrationTests.Infrastructure;

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
    public static string RabbitMqManagement => Require("ECI_RABBITMQ_MANAGEMENT");

    private static string Require(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException(
                $"Environment variable {variable} is not set: start the real services with `eval \"$(eng/services.sh start)\"` (or run eng/test.sh).");

    /// <summary>Creates an empty database of its own for one test class and returns its connection string.</summary>
    public static async Task<string> CreateDatabaseAsync(string prefix)
    {
        var name = $"eci_{prefix}_{Guid.NewGuid():N}"[..40].ToLowerInvariant();
        // Test processes create databases concurrently; Postgres refuses a CREATE DATABASE while
        // another one copies the same template (55006), so retry briefly.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var conn = new NpgsqlConnection(Postgres);
                await conn.OpenAsync();
                await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\" TEMPLATE template0", conn);
                await cmd.ExecuteNonQueryAsync();
                break;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ObjectInUse && attempt < 20)
            {
                await Task.Delay(100 * attempt);
            }
        }
        return new NpgsqlConnectionStringBuilder(Postgres) { Database = name }.ConnectionString;
    }

    /// <summary>
    /// Creates a RabbitMQ virtual host of its own and returns an amqp:// connection string to it,
    /// so concurrent test classes (and the end-to-end AppHost) never consume each other's messages.
    /// </summary>
    public static async Task<string> CreateRabbitMqVirtualHostAsync(string prefix)
    {
        var vhost = $"eci-{prefix}-{Guid.NewGuid():N}"[..32];
        var amqp = new Uri(RabbitMq);
        var credentials = Uri.UnescapeDataString(amqp.UserInfo);
        using var http = new HttpClient { BaseAddress = new Uri(RabbitMqManagement) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue(
            "Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(credentials)));
        var user = credentials.Split(':')[0];
        (await http.PutAsync($"/api/vhosts/{vhost}", null)).EnsureSuccessStatusCode();
        (await http.PutAsync($"/api/permissions/{vhost}/{Uri.EscapeDataString(user)}",
            new StringContent("""{"configure":".*","write":".*","read":".*"}""", Encoding.UTF8, "application/json")))
            .EnsureSuccessStatusCode();
        return new UriBuilder(amqp) { Path = "/" + vhost }.Uri.ToString();
    }
}
