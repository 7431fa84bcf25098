using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Provisioner.Backends;
using EphemeralCI.Provisioner.Backends.LocalSandbox;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Provisioner.Checkout;

/// <summary>The provisioner's view of the <c>Checkout</c> section (the cache reads the rest of it).</summary>
public sealed class CommitGateOptions
{
    public const string Section = "Checkout";

    /// <summary>Verify every job's commit against the cache's mirror before its runner starts (<c>Checkout:Enabled</c>); give the cache the same setting.</summary>
    public bool Enabled { get; set; }

    /// <summary>How long the cache may take to fetch and check (<c>Checkout:FetchTimeout</c>, plus a minute).</summary>
    public TimeSpan FetchTimeout { get; set; } = TimeSpan.FromMinutes(10);
}

/// <summary>
/// The stage between minting a job's token and starting its runner: the cache fetches the job's repository into its
/// mirror (one fetch shared by concurrent jobs) and checks that the job's commit exists and is on its claimed ref
/// (<c>POST /git/verify</c>, authorized by the job's own token, which carries repository, ref and commit). A refusal or
/// an unreachable forge throws <see cref="RunnerStartException"/>, so the job fails with the reason before any runner
/// or secret exists: <c>checkout refused: …</c> naming <c>ref</c> or <c>commitSha</c>, or <c>checkout failed: …</c>.
/// </summary>
public sealed class CommitGate(IOptions<CommitGateOptions> options, IntakeEndpoint endpoints, ILogger<CommitGate> logger) : IDisposable
{
    // Not from the factory: the standard resilience handler's 30 s budget would cut a first fetch of a big repository short.
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false })
    {
        Timeout = options.Value.FetchTimeout + TimeSpan.FromMinutes(1),
    };

    public bool Enabled => options.Value.Enabled;

    /// <exception cref="RunnerStartException">The commit was refused, or could not be checked.</exception>
    public async Task VerifyAsync(RunJob job, string jobToken, CancellationToken ct)
    {
        if (!options.Value.Enabled) return;
        var cache = endpoints.ResolveCache()
            ?? throw new RunnerStartException($"checkout failed: Checkout:Enabled is on but no cache is configured to keep the mirror (set '{IntakeEndpoint.CacheUrlKey}')");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(cache, "/git/verify"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", jobToken);
        request.Content = JsonContent.Create(new { commitSha = job.CommitSha });
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, ct);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            throw new RunnerStartException($"checkout failed: the cache at {cache} did not answer: {ex.Message}");
        }
        using (response)
        {
            if (response.IsSuccessStatusCode)
            {
                logger.LogInformation("Job {JobId}: commit {Commit} verified on {Ref} of {Repository}", job.JobId, job.CommitSha, job.Ref, job.Repository);
                return;
            }
            var detail = await DetailAsync(response, ct);
            var verdict = response.StatusCode is HttpStatusCode.Conflict or HttpStatusCode.BadRequest ? "checkout refused" : "checkout failed";
            logger.LogWarning("Job {JobId}: {Verdict}: {Detail}", job.JobId, verdict, detail);
            throw new RunnerStartException($"{verdict}: {detail}");
        }
    }

    private static async Task<string> DetailAsync(HttpResponseMessage response, CancellationToken ct)
    {
        try
        {
            var problem = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
            if (problem.ValueKind == JsonValueKind.Object && problem.TryGetProperty("detail", out var detail) && detail.GetString() is { Length: > 0 } text)
            {
                return problem.TryGetProperty("field", out var field) && field.GetString() is { } name && !text.Contains(name, StringComparison.Ordinal)
                    ? $"{text} ({name})"
                    : text;
            }
        }
        catch (JsonException) { }
        return $"the cache answered {(int)response.StatusCode} {response.ReasonPhrase}";
    }

    public void Dispose() => _http.Dispose();
}
