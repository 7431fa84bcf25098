using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace EphemeralCI.GitHubActions.GitHub;

/// <summary>A runner registered at GitHub for one job and its JIT config (a credential: handed on, never kept or logged).</summary>
public sealed record JitRunner(long RunnerId, string EncodedJitConfig);

/// <summary>GitHub answered 409: a runner with that name exists already. Never answered by starting another one.</summary>
public sealed class RunnerNameTakenException(string name) : Exception($"GitHub already has a runner named '{name}'");

/// <summary>A queued workflow job as the REST API lists it.</summary>
public sealed record ListedWorkflowJob(long Id, long RunId, string Status, IReadOnlyList<string> Labels, string HeadSha, string? HeadBranch);

/// <summary>
/// The GitHub REST calls the adapter makes, as the App: an RS256 App JWT (10 minutes, the most GitHub accepts)
/// for <c>/app/…</c>, an installation token (cached until 5 minutes before it expires) for everything else.
/// </summary>
public sealed class GitHubAppClient(
    HttpClient http, IGitHubAppSecrets secrets, InstallationTokenCache installationTokens, IOptions<GitHubActionsOptions> options, TimeProvider clock,
    ILogger<GitHubAppClient> logger)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    private ConcurrentDictionary<long, (string Token, DateTimeOffset ExpiresAt)> InstallationTokens => installationTokens.Tokens;
    private readonly GitHubActionsOptions _options = options.Value;

    public async Task<JitRunner> GenerateJitConfigAsync(
        long installationId, string repository, GitHubRunnerTemplate template, string runnerName, CancellationToken ct)
    {
        var path = template.Organization
            ? $"orgs/{repository.Split('/')[0]}/actions/runners/generate-jitconfig"
            : $"repos/{repository}/actions/runners/generate-jitconfig";
        using var request = await InstallationRequestAsync(HttpMethod.Post, path, installationId, ct);
        request.Content = JsonContent.Create(new JitConfigRequest(runnerName, template.RunnerGroupId, template.Labels, "_work"), options: Json);
        using var response = await http.SendAsync(request, ct);
        if (response.StatusCode == HttpStatusCode.Conflict) throw new RunnerNameTakenException(runnerName);
        await EnsureSuccessAsync(response, "generate-jitconfig", ct);
        var body = await response.Content.ReadFromJsonAsync<JitConfigResponse>(Json, ct)
            ?? throw new HttpRequestException("generate-jitconfig answered without a body");
        return new JitRunner(body.Runner.Id, body.EncodedJitConfig);
    }

    /// <summary>Removes a runner; one already gone (404) counts as removed. False: GitHub refused (422) because it is running a job.</summary>
    public async Task<bool> DeleteRunnerAsync(long installationId, string repository, bool organization, long runnerId, CancellationToken ct)
    {
        var path = organization ? $"orgs/{repository.Split('/')[0]}/actions/runners/{runnerId}" : $"repos/{repository}/actions/runners/{runnerId}";
        using var request = await InstallationRequestAsync(HttpMethod.Delete, path, installationId, ct);
        using var response = await http.SendAsync(request, ct);
        if (response.StatusCode == HttpStatusCode.NotFound) return true;
        if (response.StatusCode == HttpStatusCode.UnprocessableEntity) return false;
        await EnsureSuccessAsync(response, "delete runner", ct);
        return true;
    }

    /// <summary>The names of the registered runners GitHub says are running a job (every page, up to <c>MaxListPages</c>).</summary>
    public async Task<IReadOnlySet<string>> BusyRunnersAsync(long installationId, string repository, bool organization, CancellationToken ct)
    {
        var path = organization ? $"orgs/{repository.Split('/')[0]}/actions/runners" : $"repos/{repository}/actions/runners";
        var runners = await ListAsync<RunnersPage, ListedRunner>(installationId, path, "", p => p.Runners, ct);
        return runners.Where(r => r.Busy).Select(r => r.Name).ToHashSet(StringComparer.Ordinal);
    }

    public async Task<long> RepositoryInstallationAsync(string repository, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"repos/{repository}/installation");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await AppJwtAsync(ct));
        using var response = await http.SendAsync(request, ct);
        await EnsureSuccessAsync(response, "repository installation", ct);
        return (await response.Content.ReadFromJsonAsync<IdOnly>(Json, ct))!.Id;
    }

    /// <summary>The queued jobs of the repository's queued workflow runs (every page of runs and of each run's jobs, up to <c>MaxListPages</c> each).</summary>
    public async Task<IReadOnlyList<ListedWorkflowJob>> QueuedJobsAsync(long installationId, string repository, CancellationToken ct)
    {
        var runs = await ListAsync<RunsPage, IdOnly>(installationId, $"repos/{repository}/actions/runs", "status=queued&", p => p.WorkflowRuns, ct);
        var jobs = new List<ListedWorkflowJob>();
        foreach (var run in runs)
        {
            var listed = await ListAsync<JobsPage, JobItem>(installationId, $"repos/{repository}/actions/runs/{run.Id}/jobs", "filter=latest&", p => p.Jobs, ct);
            jobs.AddRange(listed.Where(j => j.Status == "queued")
                .Select(j => new ListedWorkflowJob(j.Id, j.RunId, j.Status, j.Labels, j.HeadSha, j.HeadBranch)));
        }
        return jobs;
    }

    /// <summary>
    /// Every page of a GitHub list (100 a page), following <c>Link: rel="next"</c> as GitHub asks (never building page
    /// numbers itself), at most <c>MaxListPages</c> pages so one huge organization cannot stall a pass: the rest waits for the next.
    /// </summary>
    private async Task<List<TItem>> ListAsync<TPage, TItem>(
        long installationId, string path, string query, Func<TPage, IReadOnlyList<TItem>> items, CancellationToken ct)
    {
        var all = new List<TItem>();
        Uri? next = new($"{path}?{query}per_page=100", UriKind.Relative);
        for (var page = 0; next is not null; page++)
        {
            if (page == _options.MaxListPages)
            {
                logger.LogWarning("GitHub list {Path} has more than {Pages} pages; this pass reads the first {Items} entries only", path, page, all.Count);
                break;
            }
            using var request = await InstallationRequestAsync(HttpMethod.Get, next.ToString(), installationId, ct);
            using var response = await http.SendAsync(request, ct);
            await EnsureSuccessAsync(response, path, ct);
            all.AddRange(items((await response.Content.ReadFromJsonAsync<TPage>(Json, ct))!));
            next = response.Headers.TryGetValues("Link", out var links) ? LinkHeader.Next(links, response.RequestMessage!.RequestUri!) : null;
            // The installation token goes only to the API it was issued by: a next link elsewhere is not followed.
            if (next is not null && !SameApi(next)) throw new HttpRequestException($"GitHub {path} answered a next page outside {_options.ApiUrl}");
        }
        return all;
    }

    private bool SameApi(Uri uri) =>
        Uri.Compare(uri, http.BaseAddress, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0
        && uri.AbsolutePath.StartsWith(http.BaseAddress!.AbsolutePath, StringComparison.Ordinal);

    private async Task<HttpRequestMessage> InstallationRequestAsync(HttpMethod method, string path, long installationId, CancellationToken ct)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await InstallationTokenAsync(installationId, ct));
        return request;
    }

    private async Task<string> InstallationTokenAsync(long installationId, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        if (InstallationTokens.TryGetValue(installationId, out var cached) && cached.ExpiresAt - TimeSpan.FromMinutes(5) > now) return cached.Token;
        using var request = new HttpRequestMessage(HttpMethod.Post, $"app/installations/{installationId}/access_tokens");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await AppJwtAsync(ct));
        using var response = await http.SendAsync(request, ct);
        await EnsureSuccessAsync(response, "installation access token", ct);
        var token = (await response.Content.ReadFromJsonAsync<AccessToken>(Json, ct))!;
        InstallationTokens[installationId] = (token.Token, token.ExpiresAt);
        return token.Token;
    }

    /// <summary>RS256, <c>iss</c> the App id, issued a minute back for clock drift, 9 minutes ahead (GitHub's limit is 10).</summary>
    private async Task<string> AppJwtAsync(CancellationToken ct)
    {
        var pem = await secrets.ReadAsync(_options.PrivateKeySecret, ct)
            ?? throw new InvalidOperationException($"The secrets broker has no operator secret '{_options.PrivateKeySecret}' (the GitHub App's private key).");
        using var rsa = RSA.Create();
        rsa.ImportFromPem(pem);
        var now = clock.GetUtcNow().UtcDateTime;
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = _options.AppId,
            IssuedAt = now.AddSeconds(-60),
            Expires = now.AddMinutes(9),
            SigningCredentials = new SigningCredentials(new RsaSecurityKey(rsa.ExportParameters(true)), SecurityAlgorithms.RsaSha256),
        });
    }

    // Only the status and the call's name: GitHub's error bodies can echo request fields.
    private static Task EnsureSuccessAsync(HttpResponseMessage response, string call, CancellationToken ct) =>
        response.IsSuccessStatusCode ? Task.CompletedTask
            : throw new HttpRequestException($"GitHub {call} answered {(int)response.StatusCode}", null, response.StatusCode);

    private sealed record JitConfigRequest(string Name, long RunnerGroupId, IReadOnlyList<string> Labels, string WorkFolder);
    private sealed record JitConfigResponse(IdOnly Runner, string EncodedJitConfig);
    private sealed record IdOnly(long Id);
    private sealed record AccessToken(string Token, DateTimeOffset ExpiresAt);
    private sealed record RunnersPage(IReadOnlyList<ListedRunner> Runners);
    private sealed record ListedRunner(long Id, string Name, bool Busy);
    private sealed record RunsPage(IReadOnlyList<IdOnly> WorkflowRuns);
    private sealed record JobsPage(IReadOnlyList<JobItem> Jobs);
    private sealed record JobItem(long Id, long RunId, string Status, IReadOnlyList<string> Labels, string HeadSha, string? HeadBranch);
}

/// <summary>Installation tokens by installation id, for the process (the typed client itself is short-lived).</summary>
public sealed class InstallationTokenCache
{
    internal ConcurrentDictionary<long, (string Token, DateTimeOffset ExpiresAt)> Tokens { get; } = new();
}
