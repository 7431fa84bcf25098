using EphemeralCI.IntegrationTests.Infrastructure;
using System.Diagnostics;
using System.Reflection;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Text.Json;

namespace EphemeralCI.Benchmarks;

/// <summary>
/// The all-in-one server, one client, samples taken in turn: `eci run` of a one-step job (submit → the log stream's
/// end event, as `eci run` waits for it) against a session (open → the first command's exit event, which is what a
/// GitLab stage or a shell waits for) and the next command in a session already open.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class SessionBenchmark : IBenchmark
{
    public string Name => "sessions";
    private const string AdminKey = "eci_sessions_bench_admin_key_0123456789abcdefghijklmnopqr";

    public async Task<string> RunAsync(BenchmarkOptions options)
    {
        var count = Math.Min(options.Count, 50);
        var dataDir = Path.Combine(Path.GetTempPath(), "eci-sessions-bench-" + Guid.NewGuid().ToString("N")[..8]);
        var address = new Uri($"http://127.0.0.1:{FreePort.Next()}");
        var home = Path.Combine(dataDir + "-eci");
        var jobFile = Path.Combine(home, "job.yml");
        using var server = ServerProcess.Start(address, dataDir, AdminKey, ["--Provisioner:Reconciler:IntervalSeconds=1", "--Provisioner:Limits:PerBackend:local=4"]);
        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        try
        {
            await ServerProcess.WaitHealthyAsync(http, server);
            Directory.CreateDirectory(home);
            await File.WriteAllTextAsync(jobFile, "name: bench\nrepository: acme/widgets\nref: refs/heads/main\ncommitSha: 0123456789abcdef0123456789abcdef01234567\nsteps:\n  - run: echo hi\n");
            var held = await OpenAsync(http);
            await CommandAsync(http, held); // its runner is up before the warm samples
            var rows = await ScenarioResult.MeasureInterleavedAsync(
            [
                ("`eci run` of a one-step job: submit → job over", async _ =>
                {
                    using var submitted = await http.PostAsJsonAsync("/api/v1/jobs", Identity(new { steps = new[] { new { run = "echo hi" } } }));
                    var id = (await submitted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
                    await EventStreamAsync(http, new HttpRequestMessage(HttpMethod.Get, $"/api/v1/jobs/{id}/logs?follow=true"), "end");
                }),
                ("session: open → first command's exit code", async _ =>
                {
                    var id = await OpenAsync(http);
                    await CommandAsync(http, id);
                    using var deleted = await http.DeleteAsync($"/api/v1/sessions/{id}");
                }),
                ("session already open: command → its exit code", async _ => await CommandAsync(http, held)),
                ("the `eci run` command (a process): start → exit, a one-step job file", async _ => await EciRunAsync(address, jobFile, home)),
                ("the `eci shell` command (a process, under a pseudo-terminal): start → the runner's prompt", async _ => await EciShellAsync(address, home)),
            ], count, concurrency: 1);
            using var ended = await http.DeleteAsync($"/api/v1/sessions/{held}");
            return $"Measured {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores: the all-in-one server (SQLite, " +
                   $"in-memory bus, local sandboxes, the native agent), one client, {count} samples of each taken in turn (the throughput column " +
                   "is the same operations run again one at a time). A one-step job `echo hi` against a session's `echo hi`; then the `eci` CLI itself, a new process each time as a user starts it (its .NET start-up included): `eci run` of the same one-step job from a job file, and `eci shell` under `script` (a pseudo-terminal) until the runner's bash prompt appears.\n\n" +
                   ScenarioResult.Header + "\n" + string.Join("\n", rows.Select(r => r.Row())) + "\n";
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
            try { Directory.Delete(dataDir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            try { Directory.Delete(home, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static string EciDll => typeof(SessionBenchmark).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "EciDll").Value!;

    private static ProcessStartInfo Eci(Uri server, string home, string fileName)
    {
        var start = new ProcessStartInfo(fileName) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.Environment["ECI_SERVER"] = server.ToString();
        start.Environment["ECI_API_KEY"] = AdminKey;
        start.Environment["ECI_CONFIG"] = Path.Combine(home, "config.json");
        start.Environment["NO_COLOR"] = "1";
        return start;
    }

    private static async Task EciRunAsync(Uri server, string jobFile, string home)
    {
        var start = Eci(server, home, "dotnet");
        foreach (var arg in (string[])[EciDll, "run", jobFile]) start.ArgumentList.Add(arg);
        using var eci = Process.Start(start)!;
        var output = eci.StandardOutput.ReadToEndAsync();
        await eci.WaitForExitAsync();
        if (eci.ExitCode != 0) throw new InvalidOperationException($"eci run exited {eci.ExitCode}: {await output} {await eci.StandardError.ReadToEndAsync()}");
    }

    /// <summary>`eci shell` under <c>script</c> (a pseudo-terminal, as a user's terminal): timed to its prompt (the runner's bash
    /// shows the workspace), then `exit` and its end (not timed).</summary>
    private static async Task EciShellAsync(Uri server, string home)
    {
        var start = Eci(server, home, "script");
        var command = $"dotnet {EciDll} shell --repository acme/widgets --ref refs/heads/main --commit 0123456789abcdef0123456789abcdef01234567 --idle-timeout 60s";
        foreach (var arg in (string[])["-qfec", command, "/dev/null"]) start.ArgumentList.Add(arg);
        using var eci = Process.Start(start)!;
        var seen = new System.Text.StringBuilder();
        var buffer = new char[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (!seen.ToString().Contains("workspace$", StringComparison.Ordinal) && !seen.ToString().Contains("workspace#", StringComparison.Ordinal))
        {
            var n = await eci.StandardOutput.ReadAsync(buffer, timeout.Token);
            if (n == 0) throw new InvalidOperationException($"eci shell ended before its prompt: {seen}");
            seen.Append(buffer, 0, n);
        }
        await eci.StandardInput.WriteAsync("exit\n");
        await eci.StandardInput.FlushAsync();
        var rest = eci.StandardOutput.ReadToEndAsync();
        await eci.WaitForExitAsync(timeout.Token);
        _ = await rest;
    }

    private static object Identity(object rest)
    {
        var body = JsonSerializer.SerializeToNode(rest, JsonSerializerOptions.Web)!.AsObject();
        body["repository"] = "acme/widgets";
        body["ref"] = "refs/heads/main";
        body["commitSha"] = "0123456789abcdef0123456789abcdef01234567";
        body["runnerTemplate"] = "default";
        return body;
    }

    private static async Task<Guid> OpenAsync(HttpClient http)
    {
        using var opened = await http.PostAsJsonAsync("/api/v1/sessions", Identity(new { session = new { idleTimeoutSeconds = 300 } }));
        opened.EnsureSuccessStatusCode();
        return (await opened.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    private static Task CommandAsync(HttpClient http, Guid id) =>
        EventStreamAsync(http, new HttpRequestMessage(HttpMethod.Post, $"/api/v1/sessions/{id}/commands") { Content = JsonContent.Create(new { run = "echo hi" }) }, "exit");

    private static async Task EventStreamAsync(HttpClient http, HttpRequestMessage request, string until)
    {
        using (request)
        using (var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            response.EnsureSuccessStatusCode();
            await foreach (var item in SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync())
            {
                if (item.EventType == until) return;
                if (item.EventType == "end") throw new InvalidOperationException($"ended before '{until}': {item.Data}");
            }
        }
        throw new InvalidOperationException($"the stream ended without '{until}'");
    }
}
