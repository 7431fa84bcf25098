using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using EphemeralCI.IntegrationTests.Infrastructure;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace EphemeralCI.Benchmarks;

/// <summary>
/// The web UI's jobs page with many jobs, in the all-in-one server on its SQLite and with its intake on
/// Postgres, beside the JSON API's ListJobs serving the same rows (first page, and 1 000 pages deep: keyset
/// paging against the API's OFFSET); and the live log's delay from the step's write to the browser's stream,
/// beside the API's own log stream of the same job. Jobs are copies of one real job, inserted in SQL.
/// </summary>
public sealed partial class WebUiBenchmark : IBenchmark
{
    private const string AdminKey = "eci_bench_webui_admin_key_0123456789abcdefghijklmnopqrstu";
    private const int PageSize = 50;
    private const int DeepPage = 1001;

    public string Name => "webui";

    public async Task<string> RunAsync(BenchmarkOptions options)
    {
        var args = Environment.GetCommandLineArgs();
        var jobs = int.TryParse(args.SkipWhile(a => a != "--jobs").Skip(1).FirstOrDefault(), out var j) && j > DeepPage * PageSize ? j : 100_000;
        var samples = options.Count;
        var load = File.ReadAllText("/proc/loadavg").Split(' ')[0];
        var started = DateTimeOffset.UtcNow;

        var sqlite = await MeasureStoreAsync("SQLite (the server's embedded default)", jobs, samples, options.Concurrency, postgres: null);
        var postgresAdmin = Environment.GetEnvironmentVariable("ECI_POSTGRES") ?? throw new InvalidOperationException("ECI_POSTGRES is not set: eval \"$(eng/services.sh env)\"");
        var database = "eci_bench_webui_" + Guid.NewGuid().ToString("N")[..8];
        List<ScenarioResult> postgres;
        await using (var admin = new NpgsqlConnection(postgresAdmin))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {database}", admin);
            await create.ExecuteNonQueryAsync();
        }
        try
        {
            postgres = await MeasureStoreAsync("Postgres", jobs, samples, options.Concurrency,
                postgres: new NpgsqlConnectionStringBuilder(postgresAdmin) { Database = database }.ConnectionString);
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await using var admin = new NpgsqlConnection(postgresAdmin);
            await admin.OpenAsync();
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {database} WITH (FORCE)", admin);
            await drop.ExecuteNonQueryAsync();
        }

        var section = new StringBuilder();
        section.AppendLine("## Web UI: jobs page and live log").AppendLine()
            .AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"Measured {started:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores, load average at start {load}. The all-in-one server as its own process ({(ServerProcess.ServerDll.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug")} build), {jobs:N0} finished jobs in its intake database (copies of one real job over 20 repositories, one a second), once on its embedded SQLite and once with `ConnectionStrings:intakedb` on Postgres from `eng/services.sh`. Times are the client's, over loopback, one request at a time (the scenarios in turn), so they hold the server's whole work for the page; throughput: {options.Concurrency} clients. The web UI signs in with the admin key (a session cookie); the JSON API gets the same key as a bearer token."))
            .AppendLine()
            .AppendLine("Jobs, 50 a page, newest first. The API's ListJobs pages by keyset with `?cursor=` (the same query as the page) or, deprecated, with OFFSET (`?page=`, counting the total); the page pages by keyset (`before` = the last row's time and id):")
            .AppendLine();
        foreach (var (store, results) in new[] { ("SQLite", sqlite), ("Postgres", postgres) })
        {
            section.AppendLine($"**{store}**").AppendLine().AppendLine(ScenarioResult.Header);
            foreach (var r in results.Where(r => !r.Scenario.StartsWith("live log", StringComparison.Ordinal))) section.AppendLine(r.Row());
            section.AppendLine();
        }
        section.AppendLine("Live log, step `echo` → line received by a client following the stream (the step prints its clock in nanoseconds; same machine, same clock), on the SQLite server while it serves nothing else:")
            .AppendLine().AppendLine("| stream | n | p50 ms | p99 ms | mean ms |").AppendLine("|---|---:|---:|---:|---:|");
        foreach (var r in sqlite.Where(r => r.Scenario.StartsWith("live log", StringComparison.Ordinal)))
        {
            section.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {r.Scenario["live log: ".Length..]} | {r.Count} | {r.P50:F1} | {r.P99:F1} | {r.Mean:F1} |"));
        }
        section.AppendLine()
            .AppendLine("Reading: targets are jobs page p99 ≤ 100 ms at 100 000 jobs and live log p50 ≤ 250 ms. The keyset page costs the same 1 000 pages deep as on the first page; the API's deprecated OFFSET page (`?page=`) grows with the offset, while its `?cursor=` page runs the web UI's keyset query and stays flat; the API's first page also counts every visible job (the total it returns). The page's plain upper bound on `created_at` (on every page) lets both planners seek the `created_at` index: without it Postgres scanned the index from the top to the cursor (page 1 001: p50 37.6 ms, p99 142.7 ms) and SQLite sorted the whole table for the ref + template filter (p50 63.8 ms, p99 103.4 ms) in the first run of this benchmark. Ref and template have no index of their own: here they match every job, the best case; a ref that is rare among many jobs walks the `created_at` index until it has filled a page, and would want an index (`ref`, `created_at`) if such filters become common. The live log's delay is the agent's batching (it ships the log every 200 ms, `LogStreamer.FlushInterval`) plus the follower; the web UI's stream, which renders each chunk to HTML, adds nothing measurable to the API's.");
        return section.ToString();
    }

    private async Task<List<ScenarioResult>> MeasureStoreAsync(string store, int jobs, int samples, int concurrency, string? postgres)
    {
        Console.Error.WriteLine($"webui: {store}, {jobs} jobs");
        var dataDir = Path.Combine(Path.GetTempPath(), "eci-bench-webui-" + Guid.NewGuid().ToString("N")[..8]);
        var address = new Uri($"http://127.0.0.1:{FreePort.Next()}");
        using var server = ServerProcess.Start(address, dataDir, AdminKey, [],
            postgres is null ? null : new Dictionary<string, string> { ["intakedb"] = postgres });
        try
        {
            using var api = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(2) };
            api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
            await ServerProcess.WaitHealthyAsync(api, server);

            // The live log first, while the database is small and the server idle: its delay is the stream's, not the seeding's.
            var live = await MeasureLiveLogAsync(api, address);

            var source = await SubmitAsync(api, "bench source", "echo seeded");
            await WaitForTerminalAsync(api, source);
            var clock = Stopwatch.StartNew();
            await using (DbConnection db = postgres is null ? new SqliteConnection($"Data Source={Path.Combine(dataDir, "intakedb.db")};Default Timeout=120") : new NpgsqlConnection(postgres))
            {
                await db.OpenAsync();
                await SeedAsync(db, source, jobs, postgres is not null);
                var (at, id) = await RowAtAsync(db, (DeepPage - 1) * PageSize - 1, postgres is not null);
                Console.Error.WriteLine($"webui: seeded {jobs} jobs in {clock.Elapsed.TotalSeconds:F1} s");

                using var ui = await SignInAsync(address);
                var cursor = $"{at.UtcTicks.ToString(CultureInfo.InvariantCulture)}_{id:N}";
                var scenarios = new List<(string, Func<int, Task>)>
                {
                    ("baseline: JSON API, first page", _ => GetAsync(api, $"/api/v1/jobs?pageSize={PageSize}")),
                    ($"JSON API, page {DeepPage} (OFFSET {(DeepPage - 1) * PageSize:N0}, deprecated ?page=)", _ => GetAsync(api, $"/api/v1/jobs?pageSize={PageSize}&page={DeepPage}")),
                    ($"JSON API, page {DeepPage} (keyset, ?cursor=)", _ => GetAsync(api, $"/api/v1/jobs?pageSize={PageSize}&cursor={cursor}")),
                    ("web UI jobs page, first page", _ => GetAsync(ui, "/")),
                    ($"web UI jobs page, page {DeepPage} (keyset)", _ => GetAsync(ui, $"/?before={cursor}")),
                    ("web UI jobs page, one repository (1 in 20), first page", _ => GetAsync(ui, "/?repository=bench%2Frepo-7")),
                    ("web UI jobs page, ref + template filters, first page", _ => GetAsync(ui, "/?ref=refs%2Fheads%2Fmain&template=default")),
                };
                var results = await ScenarioResult.MeasureInterleavedAsync(scenarios, samples, concurrency);
                return [.. results, .. live];
            }
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
            try { Directory.Delete(dataDir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>One job printing its clock every 50 ms; the web UI's live stream and the API's log stream follow it at once.</summary>
    private static async Task<List<ScenarioResult>> MeasureLiveLogAsync(HttpClient api, Uri address)
    {
        const int lines = 200;
        using var ui = await SignInAsync(address);
        var id = await SubmitAsync(api, "bench live log", $"sleep 1; for i in $(seq 1 {lines}); do echo \"eci-ts $(date +%s%N)\"; sleep 0.05; done");
        var uiDelays = FollowAsync(ui, $"/jobs/{id}/log/live");
        var apiDelays = FollowAsync(api, $"/api/v1/jobs/{id}/logs?follow=true");
        var results = new List<ScenarioResult>();
        foreach (var (name, delays) in new[] { ("baseline: JSON API log stream (`logs?follow=true`)", await apiDelays), ("web UI live log (`/jobs/{id}/log/live`, rendered HTML)", await uiDelays) })
        {
            var sorted = delays.Order().ToArray();
            if (sorted.Length == 0) throw new InvalidOperationException($"{name}: no line arrived");
            results.Add(new ScenarioResult("live log: " + name, sorted.Length, ScenarioResult.Percentile(sorted, 0.5), ScenarioResult.Percentile(sorted, 0.99), sorted.Average(), 1, 0));
        }
        return results;
    }

    private static async Task<List<double>> FollowAsync(HttpClient http, string path)
    {
        var delays = new List<double>();
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var ended = false;
        while (!ended && await reader.ReadLineAsync() is { } line)
        {
            var received = (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks * 100L;
            if (line.StartsWith("event: end", StringComparison.Ordinal)) ended = true;
            foreach (Match m in Stamp().Matches(line)) delays.Add((received - long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)) / 1e6);
        }
        return delays;
    }

    private static async Task SeedAsync(DbConnection db, Guid source, int count, bool postgres)
    {
        var columns = new List<string>();
        await using (var info = db.CreateCommand())
        {
            info.CommandText = postgres
                ? "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs' AND table_schema = current_schema() ORDER BY ordinal_position"
                : "SELECT name FROM pragma_table_info('jobs')";
            await using var reader = await info.ExecuteReaderAsync();
            while (await reader.ReadAsync()) columns.Add(reader.GetString(0));
        }
        var overrides = postgres
            ? new Dictionary<string, string>
            {
                ["id"] = "gen_random_uuid()",
                ["created_at"] = "src.created_at - make_interval(secs => n)",
                ["repository"] = "'bench/repo-' || (n % 20)",
                ["name"] = "'bench ' || n",
                ["idempotency_key"] = "NULL",
            }
            : new Dictionary<string, string>
            {
                ["id"] = "upper(printf('%s-%s-%s-%s-%s', hex(randomblob(4)), hex(randomblob(2)), hex(randomblob(2)), hex(randomblob(2)), hex(randomblob(6))))",
                ["created_at"] = "src.created_at - n * 10000000",
                ["repository"] = "'bench/repo-' || (n % 20)",
                ["name"] = "'bench ' || n",
                ["idempotency_key"] = "NULL",
            };
        var list = string.Join(", ", columns.Select(c => $"\"{c}\""));
        var values = string.Join(", ", columns.Select(c => overrides.GetValueOrDefault(c, $"src.\"{c}\"")));
        await using var insert = db.CreateCommand();
        insert.CommandTimeout = 600;
        insert.CommandText = postgres
            ? $"INSERT INTO jobs ({list}) SELECT {values} FROM jobs src CROSS JOIN generate_series(1, {count}) AS n WHERE src.id = '{source}'; ANALYZE jobs;"
            : $"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count}) INSERT INTO jobs ({list}) SELECT {values} FROM jobs src, s WHERE upper(src.id) = '{source.ToString().ToUpperInvariant()}'";
        var inserted = await insert.ExecuteNonQueryAsync();
        if (inserted < count) throw new InvalidOperationException($"seeded {inserted} jobs, wanted {count}");
        if (!postgres)
        {
            await using var analyze = db.CreateCommand();
            analyze.CommandText = "ANALYZE";
            await analyze.ExecuteNonQueryAsync();
        }
    }

    /// <summary>The row at <paramref name="offset"/> newest first: the last row of the page before the deep page.</summary>
    private static async Task<(DateTimeOffset At, Guid Id)> RowAtAsync(DbConnection db, int offset, bool postgres)
    {
        await using var query = db.CreateCommand();
        query.CommandText = $"SELECT created_at, id FROM jobs ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET {offset}";
        await using var reader = await query.ExecuteReaderAsync();
        await reader.ReadAsync();
        return postgres
            ? (new DateTimeOffset(reader.GetFieldValue<DateTime>(0).ToUniversalTime()), reader.GetGuid(1))
            : (new DateTimeOffset(reader.GetInt64(0), TimeSpan.Zero), Guid.Parse(reader.GetString(1)));
    }

    private static async Task GetAsync(HttpClient http, string path)
    {
        using var response = await http.GetAsync(path, HttpCompletionOption.ResponseContentRead);
        if (response.StatusCode != HttpStatusCode.OK) throw new InvalidOperationException($"{path} answered {(int)response.StatusCode}");
    }

    private static async Task<HttpClient> SignInAsync(Uri address)
    {
        var handler = new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false };
        var http = new HttpClient(handler) { BaseAddress = address, Timeout = TimeSpan.FromMinutes(2) };
        var form = await http.GetStringAsync("/signin");
        var token = WebUtility.HtmlDecode(TokenField().Match(form).Groups[1].Value);
        using var response = await http.PostAsync("/signin", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = token, ["key"] = AdminKey, ["returnUrl"] = "/",
        }));
        if (response.StatusCode != HttpStatusCode.Redirect) throw new InvalidOperationException($"signing in answered {(int)response.StatusCode}");
        return http;
    }

    private static async Task<Guid> SubmitAsync(HttpClient api, string name, string run)
    {
        using var response = await api.PostAsJsonAsync("/api/v1/jobs", new
        {
            name,
            repository = "bench/repo-0",
            @ref = "refs/heads/main",
            commitSha = "0123456789abcdef0123456789abcdef01234567",
            runnerTemplate = "default",
            timeoutSeconds = 120,
            steps = new[] { new { name = "run", run } },
        });
        var body = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"submit answered {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetGuid();
    }

    private static async Task WaitForTerminalAsync(HttpClient api, Guid id)
    {
        for (var i = 0; i < 600; i++)
        {
            var status = JsonDocument.Parse(await api.GetStringAsync($"/api/v1/jobs/{id}")).RootElement.GetProperty("status").GetString();
            if (status is "succeeded" or "failed" or "cancelled" or "timed_out") return;
            await Task.Delay(100);
        }
        throw new TimeoutException($"job {id} did not finish");
    }

    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex TokenField();

    [GeneratedRegex(@"eci-ts (\d{19})")]
    private static partial Regex Stamp();
}
