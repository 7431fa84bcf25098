using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace EphemeralCI.IntegrationTests.Infrastructure;

/// <summary>
/// A FAKE of GitHub's REST API, on loopback, for the GitHub Actions adapter: only the endpoints it calls (App
/// installation tokens, generate-jitconfig for repository and organization runners, runner removal, queued runs and
/// their jobs, a repository's installation, its runners' listing, lists paged with Link headers; a busy runner's removal is 422), checking the App JWT (RS256 with the key it made, iss the App id) and
/// the installation tokens it issued. It records every call and sends HMAC-signed <c>workflow_job</c> deliveries
/// the way GitHub does. GitHub itself cannot be reached from the test machines.
/// </summary>
public sealed class FakeGitHub : IAsyncDisposable
{
    public const long InstallationId = 4242;
    private readonly WebApplication _app;
    private readonly RSA _appKey = RSA.Create(2048);
    private readonly ConcurrentDictionary<string, bool> _installationTokens = new();
    private readonly ConcurrentDictionary<long, FakeRunner> _runners = new();
    private readonly ConcurrentDictionary<long, FakeWorkflowJob> _jobs = new();
    private readonly ConcurrentQueue<string> _calls = new();
    private readonly HttpClient _deliveries = new();
    private long _nextRunner = 100;
    private long _nextJob = 9_000_000;

    private FakeGitHub(WebApplication app) => _app = app;

    public string AppId { get; } = "31337";
    public string WebhookSecret { get; } = "whsec-" + Guid.NewGuid().ToString("N");
    public string PrivateKeyPem => _appKey.ExportPkcs8PrivateKeyPem();
    public string Url => _app.Urls.First();

    /// <summary>"METHOD path" of every call, in order.</summary>
    public IReadOnlyList<string> Calls => _calls.ToArray();
    public IReadOnlyCollection<FakeRunner> Runners => _runners.Values.ToArray();
    public int RefusedCalls;

    public sealed record FakeRunner(long Id, string Name, string Repository, IReadOnlyList<string> Labels, long GroupId, string JitConfig)
    {
        public bool Deleted { get; set; }
        /// <summary>Running a workflow job: GitHub refuses to remove it (422) until the job is over.</summary>
        public bool Busy { get; set; }
    }

    public sealed record FakeWorkflowJob(long Id, long RunId, string Repository, IReadOnlyList<string> Labels, string HeadSha, string HeadBranch)
    {
        public string Status { get; set; } = "queued";
        public string? RunnerName { get; set; }
    }

    public static async Task<FakeGitHub> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var fake = new FakeGitHub(app);
        app.Run(fake.HandleAsync);
        await app.StartAsync();
        return fake;
    }

    /// <summary>A workflow job GitHub has queued (listed by the runs API from now on); no webhook is sent.</summary>
    public FakeWorkflowJob Queue(string repository, params string[] labels) => Queue(repository, null, labels);

    /// <summary>As <see cref="Queue(string, string[])"/>, in the workflow run <paramref name="runId"/> (null: a run of its own).</summary>
    public FakeWorkflowJob Queue(string repository, long? runId, params string[] labels)
    {
        var id = Interlocked.Increment(ref _nextJob);
        var job = new FakeWorkflowJob(id, runId ?? id + 1_000_000, repository, labels, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20)), "main");
        _jobs[id] = job;
        return job;
    }

    /// <summary>A job not in GitHub's listings (for deliveries about jobs the reconciler must not find).</summary>
    public FakeWorkflowJob Unlisted(string repository, params string[] labels)
    {
        var id = Interlocked.Increment(ref _nextJob);
        return new FakeWorkflowJob(id, id + 1_000_000, repository, labels, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20)), "main");
    }

    /// <summary>A runner registered outside the adapter (as if by an earlier attempt): asking for its name again is 409.</summary>
    public void RegisterRunner(string name, string repository, bool busy = false)
    {
        var id = Interlocked.Increment(ref _nextRunner);
        _runners[id] = new FakeRunner(id, name, repository, [], 1, "unused-" + id) { Busy = busy };
    }

    /// <summary>GitHub gives <paramref name="job"/> to the runner named <paramref name="runnerName"/> (it goes busy); no webhook is sent.</summary>
    public void Assign(FakeWorkflowJob job, string runnerName)
    {
        var runner = _runners.Values.Single(r => r.Name == runnerName && !r.Deleted);
        runner.Busy = true;
        job.Status = "in_progress";
        job.RunnerName = runnerName;
    }

    public void Complete(FakeWorkflowJob job, string? runnerName = null)
    {
        foreach (var runner in _runners.Values.Where(r => r.Name == job.RunnerName)) runner.Busy = false;
        job.Status = "completed";
        job.RunnerName = runnerName;
    }

    /// <summary>Posts a <c>workflow_job</c> delivery to <paramref name="webhook"/>, signed unless <paramref name="signature"/> overrides it.</summary>
    public async Task<HttpResponseMessage> DeliverAsync(Uri webhook, string action, FakeWorkflowJob job, string? deliveryId = null, string? signature = null)
    {
        var body = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["action"] = action,
            ["workflow_job"] = new JsonObject
            {
                ["id"] = job.Id,
                ["run_id"] = job.RunId,
                ["head_sha"] = job.HeadSha,
                ["head_branch"] = job.HeadBranch,
                ["status"] = action,
                ["conclusion"] = action == "completed" ? "cancelled" : null,
                ["labels"] = new JsonArray(job.Labels.Select(l => (JsonNode)l).ToArray()),
                ["runner_name"] = action == "queued" ? null : job.RunnerName,
            },
            ["repository"] = new JsonObject { ["full_name"] = job.Repository },
            ["installation"] = new JsonObject { ["id"] = InstallationId },
        }.ToJsonString());
        using var request = new HttpRequestMessage(HttpMethod.Post, webhook) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Add("X-GitHub-Event", "workflow_job");
        request.Headers.Add("X-GitHub-Delivery", deliveryId ?? Guid.NewGuid().ToString());
        request.Headers.TryAddWithoutValidation("X-Hub-Signature-256",
            signature ?? "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(WebhookSecret), body)));
        return await _deliveries.SendAsync(request);
    }

    private async Task HandleAsync(HttpContext http)
    {
        var method = http.Request.Method;
        var path = http.Request.Path.Value ?? "";
        _calls.Enqueue($"{method} {path}");
        var parts = path.Trim('/').Split('/');
        var auth = http.Request.Headers.Authorization.ToString();

        if (parts is ["app", "installations", _, "access_tokens"] && method == "POST")
        {
            if (!ValidAppJwt(auth)) { await RefuseAsync(http); return; }
            var token = "ghs_" + Guid.NewGuid().ToString("N");
            _installationTokens[token] = true;
            await WriteAsync(http, 201, new JsonObject { ["token"] = token, ["expires_at"] = DateTimeOffset.UtcNow.AddHours(1).ToString("O") });
            return;
        }
        if (parts is ["repos", _, _, "installation"] && method == "GET")
        {
            if (!ValidAppJwt(auth)) { await RefuseAsync(http); return; }
            await WriteAsync(http, 200, new JsonObject { ["id"] = InstallationId });
            return;
        }
        if (!(auth.StartsWith("Bearer ", StringComparison.Ordinal) && _installationTokens.ContainsKey(auth["Bearer ".Length..])))
        {
            await RefuseAsync(http);
            return;
        }
        switch (parts)
        {
            case ["repos", var owner, var repo, "actions", "runners", "generate-jitconfig"] when method == "POST":
                await GenerateJitConfigAsync(http, $"{owner}/{repo}");
                return;
            case ["orgs", var org, "actions", "runners", "generate-jitconfig"] when method == "POST":
                await GenerateJitConfigAsync(http, org);
                return;
            case ["repos", _, _, "actions", "runners", _] or ["orgs", _, "actions", "runners", _] when method == "DELETE":
                if (!_runners.TryGetValue(long.Parse(parts[^1]), out var runner) || runner.Deleted) http.Response.StatusCode = 404;
                else if (runner.Busy) await WriteAsync(http, 422, new JsonObject { ["message"] = $"Bad request - Runner \"{runner.Name}\" is still running a job\"" });
                else { runner.Deleted = true; http.Response.StatusCode = 204; }
                return;
            case ["repos", _, _, "actions", "runners"] or ["orgs", _, "actions", "runners"] when method == "GET":
                var registeredAt = parts[0] == "repos" ? $"{parts[1]}/{parts[2]}" : parts[1];
                var listed = _runners.Values.Where(r => r.Repository == registeredAt && !r.Deleted).OrderBy(r => r.Id).Select(r => (JsonNode)new JsonObject
                {
                    ["id"] = r.Id, ["name"] = r.Name, ["status"] = "online", ["busy"] = r.Busy,
                    ["labels"] = new JsonArray(r.Labels.Select(l => (JsonNode)new JsonObject { ["name"] = l }).ToArray()),
                }).ToArray();
                await WritePageAsync(http, "runners", listed);
                return;
            case ["repos", var owner, var repo, "actions", "runs"] when method == "GET":
                var runs = _jobs.Values.Where(j => j.Repository == $"{owner}/{repo}" && j.Status == "queued")
                    .Select(j => j.RunId).Distinct().Order().Select(runId => new { RunId = runId }).Select(j => (JsonNode)new JsonObject { ["id"] = j.RunId, ["status"] = "queued" }).ToArray();
                await WritePageAsync(http, "workflow_runs", runs);
                return;
            case ["repos", _, _, "actions", "runs", var runId, "jobs"] when method == "GET":
                var jobs = _jobs.Values.Where(j => j.RunId == long.Parse(runId)).OrderBy(j => j.Id).Select(j => (JsonNode)new JsonObject
                {
                    ["id"] = j.Id, ["run_id"] = j.RunId, ["status"] = j.Status, ["head_sha"] = j.HeadSha, ["head_branch"] = j.HeadBranch,
                    ["labels"] = new JsonArray(j.Labels.Select(l => (JsonNode)l).ToArray()),
                }).ToArray();
                await WritePageAsync(http, "jobs", jobs);
                return;
            default:
                http.Response.StatusCode = 404;
                return;
        }
    }

    private async Task GenerateJitConfigAsync(HttpContext http, string owner)
    {
        var body = await JsonDocument.ParseAsync(http.Request.Body);
        var name = body.RootElement.GetProperty("name").GetString()!;
        var labels = body.RootElement.GetProperty("labels").EnumerateArray().Select(l => l.GetString()!).ToList();
        var group = body.RootElement.GetProperty("runner_group_id").GetInt64();
        lock (_runners)
        {
            // GitHub: a runner name is unique; asking again for one that exists is 409 Conflict.
            if (_runners.Values.Any(r => r.Name == name && !r.Deleted))
            {
                http.Response.StatusCode = 409;
                return;
            }
            var id = Interlocked.Increment(ref _nextRunner);
            var jit = Convert.ToBase64String(RandomNumberGenerator.GetBytes(48));
            _runners[id] = new FakeRunner(id, name, owner, labels, group, jit);
            http.Items["runner"] = _runners[id];
        }
        var runner = (FakeRunner)http.Items["runner"]!;
        await WriteAsync(http, 201, new JsonObject
        {
            ["runner"] = new JsonObject { ["id"] = runner.Id, ["name"] = runner.Name, ["status"] = "offline" },
            ["encoded_jit_config"] = runner.JitConfig,
        });
    }

    private bool ValidAppJwt(string auth)
    {
        if (!auth.StartsWith("Bearer ", StringComparison.Ordinal)) return false;
        var parts = auth["Bearer ".Length..].Split('.');
        if (parts.Length != 3) return false;
        var header = JsonDocument.Parse(Base64Url(parts[0])).RootElement;
        var payload = JsonDocument.Parse(Base64Url(parts[1])).RootElement;
        var signed = _appKey.VerifyData(Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]), Base64Url(parts[2]), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        return signed && header.GetProperty("alg").GetString() == "RS256" && payload.GetProperty("iss").GetString() == AppId
            && payload.GetProperty("iat").GetInt64() <= now && payload.GetProperty("exp").GetInt64() > now
            && payload.GetProperty("exp").GetInt64() - payload.GetProperty("iat").GetInt64() <= 600;
    }

    private static byte[] Base64Url(string s) => Convert.FromBase64String(s.Replace('-', '+').Replace('_', '/').PadRight(s.Length + (4 - s.Length % 4) % 4, '='));

    private async Task RefuseAsync(HttpContext http)
    {
        Interlocked.Increment(ref RefusedCalls);
        await WriteAsync(http, 401, new JsonObject { ["message"] = "Bad credentials" });
    }

    /// <summary>
    /// One page of a list as GitHub answers it: <c>per_page</c> (default 30, at most 100) and <c>page</c> (from 1), and a
    /// <c>Link</c> header with absolute <c>next</c>/<c>last</c> (and <c>prev</c>/<c>first</c>) targets keeping the other query parameters.
    /// </summary>
    private async Task WritePageAsync(HttpContext http, string key, JsonNode[] all)
    {
        var perPage = Math.Clamp(int.TryParse(http.Request.Query["per_page"], out var pp) ? pp : 30, 1, 100);
        var page = Math.Max(1, int.TryParse(http.Request.Query["page"], out var p) ? p : 1);
        var last = Math.Max(1, (all.Length + perPage - 1) / perPage);
        PageRequests.Enqueue($"{http.Request.Path} page {page}");
        string Target(int n)
        {
            var query = http.Request.Query.Where(q => q.Key != "page").Select(q => $"{q.Key}={Uri.EscapeDataString(q.Value.ToString())}").Append($"page={n}");
            return $"<{Url.TrimEnd('/')}{http.Request.Path}?{string.Join('&', query)}>";
        }
        var links = new List<string>();
        if (ForeignNextPage is not null) links.Add($"<{ForeignNextPage}>; rel=\"next\"");
        else if (page < last) links.AddRange([$"{Target(page + 1)}; rel=\"next\"", $"{Target(last)}; rel=\"last\""]);
        if (page > 1) links.AddRange([$"{Target(page - 1)}; rel=\"prev\"", $"{Target(1)}; rel=\"first\""]);
        if (links.Count > 0) http.Response.Headers["Link"] = string.Join(", ", links);
        var items = all.Skip((page - 1) * perPage).Take(perPage).ToArray();
        await WriteAsync(http, 200, new JsonObject { ["total_count"] = all.Length, [key] = new JsonArray(items) });
    }

    /// <summary>Set: every list page names this as its next page, as a hostile or compromised answer could (a token thief's URL).</summary>
    public string? ForeignNextPage { get; set; }

    /// <summary>"path page N" of every list page served, in order.</summary>
    public ConcurrentQueue<string> PageRequests { get; } = new();

    private static async Task WriteAsync(HttpContext http, int status, JsonObject body)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(body.ToJsonString());
    }

    public async ValueTask DisposeAsync()
    {
        _deliveries.Dispose();
        await _app.DisposeAsync();
        _appKey.Dispose();
    }
}
