using Microsoft.Data.Sqlite;

namespace EphemeralCI.EndToEndTests.WebUi;

/// <summary>
/// Writes many finished jobs straight into the all-in-one server's intake database (SQLite), each a copy of
/// a real job the server ran with its identity and time changed: the jobs page can then be paged through
/// hundreds of rows without running hundreds of runners. Copies have no timeline, so nothing (sweeps,
/// attestation, redrive) picks them up.
/// </summary>
public static class JobSeeder
{
    public sealed record Seed(Guid Id, DateTimeOffset CreatedAt, string Repository, string Ref, string Template);

    public static async Task SeedAsync(string dataDirectory, Guid template, IReadOnlyList<Seed> seeds)
    {
        await using var db = new SqliteConnection($"Data Source={Path.Combine(dataDirectory, "intakedb.db")};Default Timeout=30");
        await db.OpenAsync();
        var columns = new List<string>();
        await using (var info = db.CreateCommand())
        {
            info.CommandText = "PRAGMA table_info(jobs)";
            await using var reader = await info.ExecuteReaderAsync();
            while (await reader.ReadAsync()) columns.Add(reader.GetString(1));
        }
        string idText;
        await using (var find = db.CreateCommand())
        {
            // Guids are TEXT in the server's SQLite; match however EF wrote them.
            find.CommandText = "SELECT id FROM jobs WHERE upper(id) = upper($id)";
            find.Parameters.AddWithValue("$id", template.ToString());
            idText = (string)(await find.ExecuteScalarAsync() ?? throw new InvalidOperationException($"job {template} is not in the database"));
        }
        var upper = idText == idText.ToUpperInvariant();

        var overrides = new Dictionary<string, string>
        {
            ["id"] = "$id", ["created_at"] = "$created", ["repository"] = "$repository", ["ref"] = "$ref",
            ["runner_template"] = "$template", ["idempotency_key"] = "NULL", ["name"] = "$name",
        };
        await using var tx = (SqliteTransaction)await db.BeginTransactionAsync();
        await using var insert = db.CreateCommand();
        insert.Transaction = tx;
        insert.CommandText = $"INSERT INTO jobs ({string.Join(", ", columns)}) SELECT {string.Join(", ", columns.Select(c => overrides.GetValueOrDefault(c, c)))} FROM jobs WHERE id = $source";
        insert.Parameters.AddWithValue("$source", idText);
        var id = insert.Parameters.Add("$id", SqliteType.Text);
        var created = insert.Parameters.Add("$created", SqliteType.Integer);
        var repository = insert.Parameters.Add("$repository", SqliteType.Text);
        var gitRef = insert.Parameters.Add("$ref", SqliteType.Text);
        var runnerTemplate = insert.Parameters.Add("$template", SqliteType.Text);
        var name = insert.Parameters.Add("$name", SqliteType.Text);
        foreach (var (seed, i) in seeds.Select((s, i) => (s, i)))
        {
            id.Value = upper ? seed.Id.ToString().ToUpperInvariant() : seed.Id.ToString();
            created.Value = seed.CreatedAt.UtcTicks; // the server stores times as UTC ticks (ProviderModelAdapter)
            repository.Value = seed.Repository;
            gitRef.Value = seed.Ref;
            runnerTemplate.Value = seed.Template;
            name.Value = $"seeded {i}";
            await insert.ExecuteNonQueryAsync();
        }
        await tx.CommitAsync();
    }
}
