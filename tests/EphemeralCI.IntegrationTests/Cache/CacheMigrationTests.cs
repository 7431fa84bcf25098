using EphemeralCI.Cache.Infrastructure;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cache;

/// <summary>
/// Entry times moved from DateTime to DateTimeOffset: a row written before that migration keeps its instants,
/// on Postgres (the services) and on SQLite (the all-in-one server, where text becomes UTC ticks).
/// </summary>
public sealed class CacheMigrationTests
{
    private const string PostgresBefore = "20261202111120_ScopedQuotasAndBuildCache";
    private const string SqliteBefore = "20261202112032_ScopedQuotasAndBuildCache";

    private static readonly DateTimeOffset Created = new(2026, 11, 30, 12, 34, 56, TimeSpan.Zero);

    [Fact]
    public async Task A_postgres_row_from_before_keeps_its_times()
    {
        var options = new DbContextOptionsBuilder<CacheDbContext>()
            .UseNpgsql(await RealServices.CreateDatabaseAsync("cachemig"))
            .UseSnakeCaseNamingConvention()
            .Options;
        await using var db = new CacheDbContext(options);
        await db.GetService<IMigrator>().MigrateAsync(PostgresBefore);
        await db.Database.ExecuteSqlRawAsync(InsertRow("'2026-11-30 12:34:56+00'", "NULL", "'2026-11-30 13:00:00.123456+00'", "'2a9d7c1e-0000-4000-8000-000000000001'"));

        await db.Database.MigrateAsync();

        var entry = await db.Entries.AsNoTracking().SingleAsync();
        Assert.Equal(Created, entry.CreatedAt);
        Assert.Null(entry.CommittedAt);
        Assert.Equal(Created.AddMinutes(25).AddSeconds(4).AddTicks(1_234_560), entry.LastAccessedAt);
        Assert.Empty(await db.Database.GetPendingMigrationsAsync());
    }

    [Fact]
    public async Task A_sqlite_row_from_before_keeps_its_times_as_ticks_and_gets_its_text_back_on_the_way_down()
    {
        var file = Path.Combine(Path.GetTempPath(), $"eci-cachemig-{Guid.NewGuid():N}.db");
        try
        {
            var options = new DbContextOptionsBuilder<CacheDbContext>()
                .UseSqlite($"Data Source={file};Pooling=False", o => o.MigrationsAssembly("EphemeralCI.Server"))
                .UseSnakeCaseNamingConvention()
                .Options;
            await using var db = new CacheDbContext(options);
            var migrator = db.GetService<IMigrator>();
            await migrator.MigrateAsync(SqliteBefore);
            // The text EF Core writes for a DateTime on SQLite: the fraction only as far as it has digits.
            const string created = "2026-11-30 12:34:56", committed = "2026-11-30 12:35:00.5", accessed = "2026-11-30 13:00:00.1234567";
            await db.Database.ExecuteSqlRawAsync(InsertRow($"'{created}'", $"'{committed}'", $"'{accessed}'", "'2A9D7C1E-0000-4000-8000-000000000001'"));

            await migrator.MigrateAsync();

            var entry = await db.Entries.AsNoTracking().SingleAsync();
            Assert.Equal(Created, entry.CreatedAt);
            Assert.Equal(Created.AddSeconds(4).AddMilliseconds(500), entry.CommittedAt);
            Assert.Equal(Created.AddMinutes(25).AddSeconds(4).AddTicks(1_234_567), entry.LastAccessedAt);
            Assert.Equal(["integer", "integer", "integer"], await StorageClassesAsync(file));
            // Still ordered and compared by instant after the conversion.
            Assert.Equal(1, await db.Entries.CountAsync(e => e.LastAccessedAt > Created.AddMinutes(25) && e.CommittedAt < e.LastAccessedAt));

            await migrator.MigrateAsync(SqliteBefore);

            Assert.Equal([created, committed, accessed], await TimesAsTextAsync(file));
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            File.Delete(file);
        }
    }

    private static string InsertRow(string createdAt, string committedAt, string lastAccessedAt, string jobId) =>
        "INSERT INTO cache_entries (repository, scope, key, version, state, size_bytes, reserved_by_job_id, created_at, committed_at, last_accessed_at) " +
        $"VALUES ('acme/widgets', 'refs/heads/main', 'deps', 'v1', 'Committed', 10, {jobId}, {createdAt}, {committedAt}, {lastAccessedAt})";

    private static async Task<List<string>> StorageClassesAsync(string file) =>
        await ReadRowAsync(file, "SELECT typeof(created_at), typeof(committed_at), typeof(last_accessed_at) FROM cache_entries");

    private static async Task<List<string>> TimesAsTextAsync(string file) =>
        await ReadRowAsync(file, "SELECT created_at, committed_at, last_accessed_at FROM cache_entries");

    private static async Task<List<string>> ReadRowAsync(string file, string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={file};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        return [.. Enumerable.Range(0, reader.FieldCount).Select(i => reader.GetValue(i).ToString()!)];
    }
}
