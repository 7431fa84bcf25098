using System.Diagnostics;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Xunit;
using Xunit.Abstractions;

namespace EphemeralCI.EndToEndTests.Faults;

/// <summary>The AppHost's distributed topology, an AppHost of its own (its intake gets killed), at most 3 runners at once.</summary>
public sealed class KilledIntakeFixture : AppHostFixture
{
    public const int RunnerLimit = 3;

    protected override void Configure(IDistributedApplicationTestingBuilder builder) =>
        builder.CreateResourceBuilder<ProjectResource>("provisioner")
            .WithEnvironment("Provisioner__Limits__PerBackend__local", RunnerLimit.ToString());

    /// <summary>
    /// The intake's own process: the pid Aspire reports for the resource, or the host under it when
    /// that pid is a launcher (<c>dotnet run</c>) — killing a launcher would leave the intake serving.
    /// </summary>
    public int IntakePid()
    {
        Assert.True(App.ResourceNotifications.TryGetCurrentState("intake", out var state), "no state for the intake resource");
        // The property the dashboard shows as the process id (Aspire's KnownProperties.Executable.Pid is internal).
        var reported = state.Snapshot.Properties.FirstOrDefault(p => p.Name == "executable.pid")?.Value;
        Assert.True(reported is not null, "the intake resource reports no pid");
        var root = Convert.ToInt32(reported);
        var children = new Dictionary<int, List<int>>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so count from its closing parenthesis.
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var ppid = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
                (children.TryGetValue(ppid, out var list) ? list : children[ppid] = []).Add(pid);
            }
            catch (IOException) { }
        }
        var tree = new List<int> { root };
        for (var i = 0; i < tree.Count; i++) tree.AddRange(children.GetValueOrDefault(tree[i], []));
        var hosts = tree.Where(pid => CommandLine(pid) is { } line && line.Contains("EphemeralCI.Intake.Host", StringComparison.Ordinal) && !line.Contains(".csproj", StringComparison.Ordinal)).ToList();
        Assert.True(hosts.Count == 1, $"expected one intake host under pid {root}, found: {string.Join("; ", tree.Select(p => $"{p} {CommandLine(p)}"))}");
        return hosts[0];
    }

    private static string? CommandLine(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim(); }
        catch (IOException) { return null; }
    }

    /// <summary>
    /// SIGKILL, as an OOM kill or a crash: no shutdown code runs. Returns the moment of the kill, once Aspire has seen
    /// the resource end. <paramref name="pid"/>: the intake's, looked up beforehand when the moment matters.
    /// </summary>
    public async Task<DateTimeOffset> KillIntakeAsync(int? pid = null)
    {
        using var process = Process.GetProcessById(pid ?? IntakePid());
        var killedAt = DateTimeOffset.UtcNow;
        process.Kill(entireProcessTree: false);
        await process.WaitForExitAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await App.ResourceNotifications.WaitForResourceAsync("intake", KnownResourceStates.TerminalStates, timeout.Token);
        return killedAt;
    }

    /// <summary>Starts the intake again with the command the dashboard's Start button runs, and waits until it is healthy.</summary>
    public async Task StartIntakeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var result = await App.Services.GetRequiredService<ResourceCommandService>()
            .ExecuteCommandAsync("intake", KnownResourceCommands.StartCommand, timeout.Token);
        Assert.True(result.Success, $"starting the intake again: {result.Message}");
        await App.ResourceNotifications.WaitForResourceHealthyAsync("intake", timeout.Token);
    }

    /// <summary>How many RunnerStarted the provisioner announced for each job (its outbox rows): more than one is a second runner.</summary>
    public async Task<Dictionary<Guid, int>> StartedAnnouncementsAsync(IReadOnlyCollection<Guid> ids)
    {
        await using var connection = new NpgsqlConnection(ProvisionerDb);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("""SELECT "Body" FROM outbox_messages WHERE "MessageType" LIKE '%RunnerStarted%'""", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var counts = ids.ToDictionary(id => id, _ => 0);
        while (await reader.ReadAsync())
        {
            using var body = JsonDocument.Parse(reader.GetString(0));
            var jobId = body.RootElement.GetProperty("jobId").GetGuid();
            if (counts.ContainsKey(jobId)) counts[jobId]++;
        }
        return counts;
    }
}

/// <summary>
/// SIGKILL of the intake process of the distributed topology (the AppHost's services on Postgres and
/// RabbitMQ) in the middle of a burst, then a start through Aspire, as an operator or a supervisor
/// would. The provisioner and the runners live on: runners keep working and retry their reports with
/// back-off until their deadline, RunnerStarted/… wait in RabbitMQ. What must hold (issue 16's rule,
/// stricter than for the all-in-one server because no runner dies here): every acknowledged job
/// succeeds (the outage is far shorter than the jobs' 300 s deadline, so none may fail); none is
/// stuck 3 min after the restart; no job gets a second runner (one runner id in its timeline, one
/// RunnerStarted in the provisioner's outbox); runner.destroyed for every job; nothing of any runner
/// left on the machine. The counts go to the test output (docs/reliability.md).
/// </summary>
public sealed class IntakeCrashTests(KilledIntakeFixture fx, ITestOutputHelper output) : IClassFixture<KilledIntakeFixture>
{
    private const int Jobs = 16;
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(3);
    /// <summary>Down at least this long, so runners' reports and the provisioner's messages meet the outage, not only the restart.</summary>
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(10);

    private static object Job(int i) => JobClient.Job($"burst {i}", 300,
        ("work", $"echo begin {i}; sleep 3"),
        ("end", $"echo end {i}"));

    /// <param name="killWhenRunning">0: half-way through acknowledging a burst sent at once; 3: with runners mid-step and jobs waiting.</param>
    [Theory]
    [InlineData(0)]
    [InlineData(KilledIntakeFixture.RunnerLimit)]
    public async Task Killed_mid_burst_and_started_again_every_acknowledged_job_succeeds_once_and_nothing_is_left(int killWhenRunning)
    {
        List<Guid> ids;
        string atKill;
        DateTimeOffset killedAt;
        var sent = DateTimeOffset.UtcNow;
        if (killWhenRunning == 0)
        {
            // The burst arrives all at once and the intake dies half-way through acknowledging it. A
            // submission without an answer was never acknowledged (the CI system retries it, with an
            // Idempotency-Key); every acknowledged one is in Postgres with its RunJob in the outbox.
            var acknowledged = 0;
            var intake = fx.IntakePid(); // looked up now: scanning /proc at the kill would let the burst finish first
            var submissions = Enumerable.Range(0, Jobs).Select(async i =>
            {
                try
                {
                    var id = await fx.Intake.SubmitAsync(Job(i));
                    Interlocked.Increment(ref acknowledged);
                    return (Guid?)id;
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or Xunit.Sdk.XunitException) { return null; }
            }).ToList();
            var acknowledging = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (Volatile.Read(ref acknowledged) < Jobs / 2)
            {
                Assert.True(DateTime.UtcNow < acknowledging, $"only {acknowledged} of {Jobs} submissions acknowledged in 60 s");
                await Task.Delay(5);
            }
            killedAt = await fx.KillIntakeAsync(intake);
            ids = (await Task.WhenAll(submissions)).OfType<Guid>().ToList();
            atKill = $"{ids.Count} of {Jobs} acknowledged";
        }
        else
        {
            ids = [];
            for (var i = 0; i < Jobs; i++) ids.Add(await fx.Intake.SubmitAsync(Job(i)));
            // Kill with runners mid-step (reporting steps and logs), jobs waiting for a slot and some not yet taken.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
            while ((await fx.Intake.StatusesAsync(ids)).Count(s => s == "running") < killWhenRunning)
            {
                Assert.True(DateTime.UtcNow < deadline, $"the burst never reached {killWhenRunning} running jobs");
                await Task.Delay(100);
            }
            var statuses = await fx.Intake.StatusesAsync(ids);
            killedAt = await fx.KillIntakeAsync();
            atKill = string.Join(", ", statuses.GroupBy(s => s).Select(g => $"{g.Count()} {g.Key}"));
        }
        output.WriteLine($"at the kill: {atKill}");

        var down = Outage - (DateTimeOffset.UtcNow - killedAt);
        if (down > TimeSpan.Zero) await Task.Delay(down);
        await fx.StartIntakeAsync();
        var restartedAt = DateTimeOffset.UtcNow;
        output.WriteLine($"intake down {(restartedAt - killedAt).TotalSeconds:F1} s (kill to healthy again)");

        var ended = await fx.Intake.WaitForEndsAsync(ids, Bound);
        var drained = ended.Values.Select(j => j.GetProperty("finishedAt").GetDateTimeOffset()).DefaultIfEmpty(restartedAt).Max();

        var problems = new List<string>();
        var started = await fx.StartedAnnouncementsAsync(ids);
        int succeeded = 0, failed = 0, duplicates = 0, leftovers = 0, reportedWhileDown = 0;
        foreach (var id in ids)
        {
            if (!ended.TryGetValue(id, out var job))
            {
                problems.Add($"{id}: stuck '{(await fx.Intake.GetJobAsync(id)).GetProperty("status").GetString()}' {Bound.TotalMinutes} min after the restart");
                continue;
            }
            var events = await fx.Intake.TimelineWithAsync(id, "runner.destroyed", TimeSpan.FromSeconds(30));
            // Step events carry the agent's own time: one inside the outage was sent while nobody answered and delivered by a retry.
            reportedWhileDown += events.Count(e => e.Type.StartsWith("step.", StringComparison.Ordinal) && e.At > killedAt && e.At < restartedAt);
            var runners = events.Where(e => e.Type == "runner.started").Select(e => e.RunnerId).Distinct().ToList();
            if (runners.Count > 1 || started[id] > 1)
            {
                duplicates++;
                problems.Add($"{id}: {runners.Count} runners in its timeline ({string.Join(", ", runners)}), {started[id]} RunnerStarted announced");
            }
            var status = job.GetProperty("status").GetString();
            if (status == "succeeded")
            {
                succeeded++;
                var log = await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/logs");
                if (!log.Contains("end ", StringComparison.Ordinal)) problems.Add($"{id}: succeeded without its last step's line:\n{log}");
            }
            else
            {
                failed++;
                var reason = job.TryGetProperty("statusReason", out var r) ? r.GetString() : null;
                problems.Add($"{id}: ended {status} ({reason}); timeline: {string.Join(", ", events.Select(e => $"{e.Type}@{e.At:HH:mm:ss.fff}"))}");
            }
            if (events.All(e => e.Type != "runner.destroyed")) problems.Add($"{id}: no runner.destroyed");
        }
        foreach (var id in ids)
        {
            for (var i = 0; i < 20 && RunnerTraces.ProcessesOf(id).Count > 0; i++) await Task.Delay(100);
            var left = RunnerTraces.ProcessesOf(id).Count > 0
                || Directory.Exists(Path.Combine(fx.RunnerWorkRoot, id.ToString()))
                || Directory.Exists(Path.Combine(fx.RunnerWorkRoot, id.ToString("N")));
            if (left)
            {
                leftovers++;
                problems.Add($"{id}: a process or the folder of its runner left");
            }
        }
        // With runners mid-step at the kill, their steps end while the intake is down: the retries are what is under test.
        if (killWhenRunning > 0 && reportedWhileDown == 0) problems.Add("no step event was reported while the intake was down: the outage missed the runners");
        // Every runner ends with a valid attestation whose teardown check passed (the intake that records it was restarted).
        if (problems.Count == 0) foreach (var id in ids) await fx.WaitForVerifiedRunnerEndAsync(id);
        output.WriteLine($"{ids.Count} of {Jobs} acknowledged: {succeeded} succeeded, {failed} failed, {ids.Count - ended.Count} stuck, " +
            $"{duplicates} with a second runner, {leftovers} with leftovers; {reportedWhileDown} step events reported while it was down; last job ended {(drained - restartedAt).TotalSeconds:F1} s after the restart " +
            $"(burst to drained {(drained - sent).TotalSeconds:F1} s)");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }
}
