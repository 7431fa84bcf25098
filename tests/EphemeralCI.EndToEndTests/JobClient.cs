using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>What a CI system does with the intake API, as test helpers.</summary>
public static class JobClient
{
    public static async Task<Guid> SubmitAsync(this HttpClient intake, object spec)
    {
        using var response = await intake.PostAsJsonAsync("/api/v1/jobs", spec);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"submit answered {(int)response.StatusCode}: {body}");
        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.GetProperty("id").GetGuid();
    }

    public static async Task<JsonElement> GetJobAsync(this HttpClient intake, Guid id)
    {
        var json = await intake.GetStringAsync($"/api/v1/jobs/{id}");
        return JsonDocument.Parse(json).RootElement.Clone();
    }

    public static async Task<List<string>> EventTypesAsync(this HttpClient intake, Guid id)
    {
        var json = await intake.GetStringAsync($"/api/v1/jobs/{id}/events");
        using var doc = JsonDocument.Parse(json);
        var items = doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement : doc.RootElement.GetProperty("events");
        return items.EnumerateArray().Select(e => e.GetProperty("type").GetString()!).ToList();
    }

    public sealed record TimelineEvent(string Type, DateTimeOffset At, string? RunnerId);

    /// <summary>The job's timeline, with the runner each runner.* event is about.</summary>
    public static async Task<List<TimelineEvent>> TimelineAsync(this HttpClient intake, Guid id)
    {
        using var doc = JsonDocument.Parse(await intake.GetStringAsync($"/api/v1/jobs/{id}/events"));
        var items = doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement : doc.RootElement.GetProperty("events");
        return items.EnumerateArray().Select(e => new TimelineEvent(
            e.GetProperty("type").GetString()!,
            e.GetProperty("at").GetDateTimeOffset(),
            e.TryGetProperty("data", out var d) && d.ValueKind == JsonValueKind.Object && d.TryGetProperty("runnerId", out var rid) ? rid.GetString() : null)).ToList();
    }

    /// <summary>
    /// A burst of <paramref name="count"/> jobs sent at once (or one every <paramref name="spacing"/>), and
    /// <paramref name="kill"/> (which returns the moment of the kill) as soon as half of them are acknowledged. A
    /// submission that got no answer was never acknowledged (a CI system retries it, with an Idempotency-Key): returns
    /// the acknowledged ones.
    /// </summary>
    public static async Task<(List<Guid> Acknowledged, DateTimeOffset KilledAt)> SubmitBurstKilledHalfWayAsync(
        this HttpClient intake, int count, Func<int, object> job, Func<Task<DateTimeOffset>> kill, TimeSpan spacing = default)
    {
        var acknowledged = 0;
        var submissions = Enumerable.Range(0, count).Select(async i =>
        {
            try
            {
                if (spacing > TimeSpan.Zero) await Task.Delay(spacing * i);
                var id = await intake.SubmitAsync(job(i));
                Interlocked.Increment(ref acknowledged);
                return (Guid?)id;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or Xunit.Sdk.XunitException) { return null; }
        }).ToList();
        var acknowledging = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (Volatile.Read(ref acknowledged) < count / 2)
        {
            Assert.True(DateTime.UtcNow < acknowledging, $"only {acknowledged} of {count} submissions acknowledged in 60 s");
            await Task.Delay(5);
        }
        var killedAt = await kill();
        return ((await Task.WhenAll(submissions)).OfType<Guid>().ToList(), killedAt);
    }

    /// <summary>
    /// The job's timeline once it holds an event of <paramref name="type"/>, or as it is after <paramref name="within"/>.
    /// For an event that follows the job's end: runner.destroyed comes after the teardown, a moment after the job's status.
    /// </summary>
    public static async Task<List<TimelineEvent>> TimelineWithAsync(this HttpClient intake, Guid id, string type, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        var events = await intake.TimelineAsync(id);
        while (events.All(e => e.Type != type) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(250);
            events = await intake.TimelineAsync(id);
        }
        return events;
    }

    public static async Task<List<string?>> StatusesAsync(this HttpClient intake, IEnumerable<Guid> ids)
    {
        var statuses = new List<string?>();
        foreach (var id in ids) statuses.Add((await intake.GetJobAsync(id)).GetProperty("status").GetString());
        return statuses;
    }

    public static bool IsTerminal(string? status) => status is "succeeded" or "failed" or "cancelled" or "timed_out";

    /// <summary>Polls every job until each has ended or <paramref name="bound"/> has passed: the ended ones, by id.</summary>
    public static async Task<Dictionary<Guid, JsonElement>> WaitForEndsAsync(this HttpClient intake, IReadOnlyCollection<Guid> ids, TimeSpan bound)
    {
        var ended = new Dictionary<Guid, JsonElement>();
        var end = DateTime.UtcNow + bound;
        while (ended.Count < ids.Count && DateTime.UtcNow < end)
        {
            foreach (var id in ids.Where(id => !ended.ContainsKey(id)))
            {
                var job = await intake.GetJobAsync(id);
                if (IsTerminal(job.GetProperty("status").GetString())) ended[id] = job;
            }
            await Task.Delay(250);
        }
        return ended;
    }

    /// <summary>Polls until the job reaches a terminal status (bounded, so a stuck job fails the test).</summary>
    public static async Task<JsonElement> WaitForTerminalAsync(this HttpClient intake, Guid id, TimeSpan? within = null)
    {
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(90));
        while (true)
        {
            var job = await intake.GetJobAsync(id);
            var status = job.GetProperty("status").GetString();
            if (IsTerminal(status)) return job;
            if (DateTime.UtcNow > deadline) Assert.Fail($"job {id} still '{status}' after waiting");
            await Task.Delay(200);
        }
    }

    public static async Task WaitForEventAsync(this HttpClient intake, Guid id, string type, TimeSpan? within = null)
    {
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(60));
        while (!(await intake.EventTypesAsync(id)).Contains(type))
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"job {id} never recorded '{type}'");
            await Task.Delay(200);
        }
    }

    public static object Job(string name, int? timeoutSeconds = null, params (string Name, string Run)[] steps) => new
    {
        name,
        repository = "acme/widgets",
        @ref = "refs/heads/main",
        commitSha = "0123456789abcdef0123456789abcdef01234567",
        runnerTemplate = "default",
        timeoutSeconds,
        env = new Dictionary<string, string> { ["GREETING"] = "hello" },
        steps = steps.Select(s => new { name = s.Name, run = s.Run }).ToArray(),
    };

    /// <summary><paramref name="job"/> (a <see cref="Job"/>) with <c>retry: {infrastructure: N}</c>.</summary>
    public static object WithInfrastructureRetries(object job, int retries)
    {
        var body = System.Text.Json.JsonSerializer.SerializeToNode(job, System.Text.Json.JsonSerializerOptions.Web)!.AsObject();
        body["retry"] = new System.Text.Json.Nodes.JsonObject { ["infrastructure"] = retries };
        return body;
    }
}
