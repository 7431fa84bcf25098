using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using EphemeralCI.Cli;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.Intake.Auth;
using EphemeralCI.IntegrationTests.Intake;
using Xunit;

namespace EphemeralCI.IntegrationTests.Cli;

/// <summary>`eci` against the real intake (Postgres, Redis): every command, and the messages for what goes wrong.</summary>
public sealed class CliCommandTests(IntakeFactory app) : IClassFixture<IntakeFactory>, IDisposable
{
    private readonly CliHarness _cli = new(app);

    public void Dispose() => _cli.Dispose();

    private string JobFile(string name, string extra = "") => _cli.WriteFile($"{name}.yml", $"""
        name: {name}
        repository: acme/cli-tests
        ref: refs/heads/main
        commit: {Jobs.Sha}
        timeout: 10m
        {extra}
        steps:
          - name: greet
            run: echo hello
          - echo second
        """);

    private async Task<string> KeyAsync(params string[] scopes)
    {
        using var admin = app.AdminClient();
        using var response = await admin.PostAsJsonAsync("/api/v1/api-keys", new { name = $"cli-{Guid.NewGuid():N}", scopes, repositories = new[] { "acme/*" } });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString()!;
    }

    [Fact]
    public async Task Submit_list_show_events_and_cancel()
    {
        var key = await KeyAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var submitted = await _cli.RunAsync(key, "run", JobFile("list-show"), "--detach");
        Assert.True(submitted.ExitCode == 0, submitted.ToString());
        var id = Guid.Parse(submitted.StdOut.Trim());

        var stored = await app.WithDbAsync(db => Task.FromResult(db.Jobs.Single(j => j.Id == id)));
        Assert.Equal(600, stored.TimeoutSeconds);
        Assert.Equal("default", stored.RunnerTemplate);

        var listJson = await _cli.RunAsync(key, "jobs", "list", "--repository", "acme/cli-tests", "--json");
        Assert.Equal(0, listJson.ExitCode);
        var page = JsonDocument.Parse(listJson.StdOut).RootElement;
        Assert.Contains(page.GetProperty("items").EnumerateArray(), j => j.GetProperty("id").GetGuid() == id);

        var table = await _cli.RunAsync(key, "jobs", "list", "--status", "queued");
        Assert.Contains(id.ToString(), table.StdOut);
        Assert.Contains("list-show", table.StdOut);

        var show = await _cli.RunAsync(key, "jobs", "show", id.ToString());
        Assert.Equal(0, show.ExitCode);
        Assert.Contains("queued", show.StdOut);
        Assert.Contains(Jobs.Sha, show.StdOut);

        var events = await _cli.RunAsync(key, "jobs", "events", id.ToString(), "--json");
        Assert.Equal("job.queued", JsonDocument.Parse(events.StdOut).RootElement.GetProperty("events")[0].GetProperty("type").GetString());

        var cancel = await _cli.RunAsync(key, "jobs", "cancel", id.ToString());
        Assert.True(cancel.ExitCode == 0, cancel.ToString());
        Assert.Contains("cancelled", cancel.StdOut);
        Assert.Equal(JobStatus.Cancelled, (await app.WithDbAsync(db => Task.FromResult(db.Jobs.Single(j => j.Id == id)))).Status);

        var again = await _cli.RunAsync(key, "jobs", "cancel", id.ToString());
        Assert.Equal(ExitCodes.Error, again.ExitCode);
        Assert.Contains("already finished", again.StdErr);
    }

    [Fact]
    public async Task Create_list_use_and_revoke_a_key()
    {
        var created = await _cli.RunAsync(app.AdminKey, "keys", "create", "--name", "from-cli", "--scope", "read", "--repo", "acme/*");
        Assert.True(created.ExitCode == 0, created.ToString());
        var newKey = created.StdOut.Trim();
        Assert.StartsWith("eci_", newKey);
        Assert.Contains("only time the key is shown", created.StdErr);

        var list = await _cli.RunAsync(app.AdminKey, "keys", "list", "--json");
        var entry = JsonDocument.Parse(list.StdOut).RootElement.EnumerateArray().Single(k => k.GetProperty("name").GetString() == "from-cli");
        Assert.DoesNotContain(newKey, list.StdOut);
        var keyId = entry.GetProperty("id").GetGuid();

        Assert.Equal(0, (await _cli.RunAsync(newKey, "jobs", "list")).ExitCode);

        var revoke = await _cli.RunAsync(app.AdminKey, "keys", "revoke", keyId.ToString());
        Assert.True(revoke.ExitCode == 0, revoke.ToString());

        var refused = await _cli.RunAsync(newKey, "jobs", "list");
        Assert.Equal(ExitCodes.Auth, refused.ExitCode);
        Assert.Contains("refused the API key", refused.StdErr);
        Assert.DoesNotContain("   at ", refused.StdErr); // a message, not a stack trace
    }

    [Fact]
    public async Task Version_prints_the_clis_version_and_needs_no_server()
    {
        var version = await _cli.RunAsync("", "--version");
        Assert.True(version.ExitCode == 0, version.ToString());
        Assert.Equal(typeof(EphemeralCI.Cli.Hosting.EciApp).Assembly.GetName().Version!.ToString(3), version.StdOut.Trim());
    }

    [Fact]
    public async Task A_bad_key_and_a_missing_scope_are_explained()
    {
        var bad = await _cli.RunAsync("eci_notarealkey000000000000000000000000", "jobs", "list");
        Assert.Equal(ExitCodes.Auth, bad.ExitCode);
        Assert.Contains("The server refused the API key: The API key is invalid or has been revoked.", bad.StdErr);

        var readOnly = await KeyAsync(ApiKeyScopes.Read);
        var denied = await _cli.RunAsync(readOnly, "run", JobFile("no-scope"));
        Assert.Equal(ExitCodes.Auth, denied.ExitCode);
        Assert.Contains("does not have the 'submit' scope", denied.StdErr);
        Assert.Contains("eci keys create --name NAME --scope submit", denied.StdErr);

        var keysDenied = await _cli.RunAsync(readOnly, "keys", "list");
        Assert.Contains("'admin' scope", keysDenied.StdErr);
    }

    [Fact]
    public async Task The_servers_field_errors_point_at_the_job_files_lines()
    {
        var key = await KeyAsync(ApiKeyScopes.Submit);
        var path = _cli.WriteFile("invalid.yml", """
            repository: acme/cli-tests
            ref: refs/heads/main
            commit: not-a-sha
            env:
              ECI_SECRET: x
            steps:
              - echo hi
            """);

        var run = await _cli.RunAsync(key, "run", path);

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains("The server refused the job", run.StdErr);
        Assert.Contains($"{path}:3:9: commitSha: must be 40", run.StdErr);
        Assert.Contains($"{path}:5:3: env.ECI_SECRET:", run.StdErr);
    }

    [Fact]
    public async Task An_invalid_job_file_is_refused_before_anything_is_sent()
    {
        var path = _cli.WriteFile("broken.yml", "name: x\nsteps:\n  - rn: echo\n");
        _cli.Handler = new ThrowingHandler(); // proves no request is made

        var run = await _cli.RunAsync("eci_unused", "run", path);

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains($"{path}:3:5: unknown field `steps[0].rn`; did you mean `run`?", run.StdErr);
    }

    [Fact]
    public async Task Unknown_job_and_unreachable_server_are_explained()
    {
        var key = await KeyAsync(ApiKeyScopes.Read);
        var missing = await _cli.RunAsync(key, "jobs", "show", Guid.NewGuid().ToString());
        Assert.Equal(ExitCodes.NotFound, missing.ExitCode);
        Assert.Contains("There is no job", missing.StdErr);

        _cli.Handler = null;
        _cli.Environment["ECI_SERVER"] = "http://127.0.0.1:1";
        var down = await _cli.RunAsync(key, "jobs", "list");
        Assert.Equal(ExitCodes.Unreachable, down.ExitCode);
        Assert.Contains("Cannot reach the EphemeralCI server at http://127.0.0.1:1/", down.StdErr);
    }

    [Fact]
    public async Task Config_set_stores_the_key_from_stdin_privately_and_show_masks_it()
    {
        _cli.Environment.Remove("ECI_SERVER");
        var set = await _cli.RunAsync("ignored", "config", "set", "--server", "http://intake.example:5080");
        Assert.True(set.ExitCode == 0, set.ToString());
        var file = Path.Combine(_cli.Directory, "config.json");
        if (OperatingSystem.IsLinux()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        Assert.Contains("http://intake.example:5080", await File.ReadAllTextAsync(file));

        var show = await _cli.RunAsync("eci_abcdefgh0123456789012345678901234567", "config", "show", "--json");
        var shown = JsonDocument.Parse(show.StdOut).RootElement;
        Assert.Equal("http://intake.example:5080", shown.GetProperty("server").GetString());
        Assert.Equal("config file", shown.GetProperty("serverSource").GetString());
        Assert.Equal("eci_abcdefgh...(40 characters)", shown.GetProperty("apiKey").GetString());
        Assert.Equal("environment", shown.GetProperty("apiKeySource").GetString());
    }

    private sealed class ThrowingHandler : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("no request expected");
    }
}

/// <summary>`eci run` following a job whose runner is played by the test through the runner API.</summary>
public sealed class CliFollowTests(IntakeFactory app) : IClassFixture<IntakeFactory>, IDisposable
{
    private readonly CliHarness _cli = new(app);

    public void Dispose() => _cli.Dispose();

    private static StringContent Text(string text) => new(text, Encoding.UTF8, "text/plain");

    private async Task<string> SubmitterKeyAsync()
    {
        using var admin = app.AdminClient();
        using var response = await admin.PostAsJsonAsync("/api/v1/api-keys", new { name = $"cli-{Guid.NewGuid():N}", scopes = new[] { "submit", "read" }, repositories = new[] { "acme/*" } });
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString()!;
    }

    private string JobFile() => _cli.WriteFile("follow.yml", $"""
        name: follow
        repository: acme/widgets
        ref: refs/heads/main
        commitSha: {Jobs.Sha}
        steps:
          - name: one
            run: echo one
          - name: two
            run: exit 3
        """);

    [Fact]
    public async Task Run_streams_logs_and_steps_live_and_exits_with_the_jobs_code()
    {
        var run = _cli.Start(await SubmitterKeyAsync(), "run", JobFile());
        var id = await run.FollowingJobAsync();

        using var runner = app.RunnerClient(id);
        (await runner.GetAsync(RunnerApiRoutes.Job)).EnsureSuccessStatusCode();
        await runner.PostAsJsonAsync(RunnerApiRoutes.Events, new RunnerStepEvent(JobEventTypes.StepStarted, 0, "one", null, DateTimeOffset.UtcNow));
        (await runner.PostAsync($"{RunnerApiRoutes.Logs}?offset=0", Text("one\n"))).EnsureSuccessStatusCode();
        // The first line reaches the CLI while the job is still running: it is followed live, not fetched at the end.
        await IntakeFactory.EventuallyAsync(() => Task.FromResult(run.StdOut.Contains("one\n")), "the first log line on stdout");
        Assert.False(run.Exit.IsCompleted);

        await runner.PostAsJsonAsync(RunnerApiRoutes.Events, new RunnerStepEvent(JobEventTypes.StepFinished, 0, "one", 0, DateTimeOffset.UtcNow));
        await runner.PostAsJsonAsync(RunnerApiRoutes.Events, new RunnerStepEvent(JobEventTypes.StepStarted, 1, "two", null, DateTimeOffset.UtcNow));
        (await runner.PostAsync($"{RunnerApiRoutes.Logs}?offset=4", Text("two failed\n"))).EnsureSuccessStatusCode();
        await runner.PostAsJsonAsync(RunnerApiRoutes.Events, new RunnerStepEvent(JobEventTypes.StepFinished, 1, "two", 3, DateTimeOffset.UtcNow));
        (await runner.PostAsJsonAsync(RunnerApiRoutes.Complete, new RunnerCompletion(false, 3, 1))).EnsureSuccessStatusCode();

        await run.CompletedAsync();
        Assert.True(run.ExitCode == 3, run.ToString());
        Assert.Equal("one\ntwo failed\n", run.StdOut);
        Assert.Contains("step 1/2 one", run.StdErr);
        Assert.Contains("✗ step 2/2 two exited 3", run.StdErr);
        Assert.Contains($"Job {id} failed with exit code 3", run.StdErr);
    }

    [Fact]
    public async Task A_succeeding_job_exits_0_and_json_keeps_stdout_for_the_result()
    {
        var run = _cli.Start(await SubmitterKeyAsync(), "run", JobFile(), "--json");
        var id = await run.FollowingJobAsync();

        using var runner = app.RunnerClient(id);
        (await runner.GetAsync(RunnerApiRoutes.Job)).EnsureSuccessStatusCode();
        (await runner.PostAsync($"{RunnerApiRoutes.Logs}?offset=0", Text("all good\n"))).EnsureSuccessStatusCode();
        (await runner.PostAsJsonAsync(RunnerApiRoutes.Complete, new RunnerCompletion(true, 0, null))).EnsureSuccessStatusCode();

        await run.CompletedAsync();
        Assert.True(run.ExitCode == 0, run.ToString());
        var job = JsonDocument.Parse(run.StdOut).RootElement;
        Assert.Equal(id, job.GetProperty("id").GetGuid());
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Contains("all good", run.StdErr);

        // Following a finished job replays its log and mirrors its result too.
        var logs = await _cli.RunAsync(await SubmitterKeyAsync(), "jobs", "logs", id.ToString(), "--follow");
        Assert.Equal(0, logs.ExitCode);
        Assert.Equal("all good\n", logs.StdOut);
        var plain = await _cli.RunAsync(await SubmitterKeyAsync(), "jobs", "logs", id.ToString());
        Assert.Equal("all good\n", plain.StdOut);
    }

    [Fact]
    public async Task Interrupt_with_cancel_on_interrupt_cancels_the_job_and_exits_130()
    {
        var run = _cli.Start(await SubmitterKeyAsync(), "run", JobFile(), "--cancel-on-interrupt");
        var id = await run.FollowingJobAsync();

        _cli.Interrupts.Trigger();

        await run.CompletedAsync();
        Assert.True(run.ExitCode == ExitCodes.Cancelled, run.ToString());
        Assert.Contains($"Cancel requested for job {id}", run.StdErr);
        Assert.Equal(JobStatus.Cancelled, (await app.WithDbAsync(db => Task.FromResult(db.Jobs.Single(j => j.Id == id)))).Status);
    }

    [Fact]
    public async Task Interrupt_without_a_person_to_ask_detaches_and_leaves_the_job_running()
    {
        var run = _cli.Start(await SubmitterKeyAsync(), "run", JobFile());
        var id = await run.FollowingJobAsync();

        _cli.Interrupts.Trigger();

        await run.CompletedAsync();
        Assert.True(run.ExitCode == ExitCodes.Cancelled, run.ToString());
        Assert.Contains($"eci jobs logs {id} --follow", run.StdErr);
        Assert.Equal(JobStatus.Queued, (await app.WithDbAsync(db => Task.FromResult(db.Jobs.Single(j => j.Id == id)))).Status);
    }
}
