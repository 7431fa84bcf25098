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

    /// <summary>Polls until the job reaches a terminal status (bounded, so a stuck job fails the test).</summary>
    public static async Task<JsonElement> WaitForTerminalAsync(this HttpClient intake, Guid id, TimeSpan? within = null)
    {
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(90));
        while (true)
        {
            var job = await intake.GetJobAsync(id);
            var status = job.GetProperty("status").GetString();
            if (status is "succeeded" or "failed" or "cancelled" or "timed_out") return job;
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
