using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;
using EphemeralCI.Contracts.Jobs;

namespace EphemeralCI.GitHubActions.Services;

/// <summary>
/// The intake's public API with <c>GitHubActions:IntakeApiKey</c>: a key with the <c>jobs:write</c> scope bound to
/// the served repositories and the runner templates the adapter uses, so this service can claim nothing else.
/// </summary>
public sealed class HttpRunnerJobs(HttpClient http) : IRunnerJobs
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) } };

    public async Task<Guid> SubmitAsync(JobSpec spec, string idempotencyKey, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/jobs") { Content = JsonContent.Create(spec, options: Json) };
        request.Headers.Add("Idempotency-Key", idempotencyKey);
        using var response = await http.SendAsync(request, ct);
        // 4xx: the intake will never take this spec (its detail names the field, never a value of the env).
        if ((int)response.StatusCode is >= 400 and < 500)
        {
            throw new RunnerJobRefusedException($"intake answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}");
        }
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<Accepted>(Json, ct))!.Id;
    }

    public async Task<JobStatus?> StatusAsync(Guid jobId, CancellationToken ct)
    {
        using var response = await http.GetAsync($"api/v1/jobs/{jobId}", ct);
        if (response.StatusCode == HttpStatusCode.NotFound) return null;
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<Accepted>(Json, ct))!.Status;
    }

    public async Task CancelAsync(Guid jobId, string reason, CancellationToken ct)
    {
        using var response = await http.PostAsync($"api/v1/jobs/{jobId}/cancel", null, ct);
        if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Conflict) return;
        response.EnsureSuccessStatusCode();
    }

    private sealed record Accepted(Guid Id, JobStatus Status);
}
