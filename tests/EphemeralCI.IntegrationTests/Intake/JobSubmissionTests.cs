using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Auth;
using Microsoft.EntityFrameworkCore;
using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>POST /api/v1/jobs on the in-memory bus: validation, limits, auth, idempotency.</summary>
public sealed class JobSubmissionTests(IntakeFactory app) : IClassFixture<IntakeFactory>
{
    [Fact]
    public async Task Accepted_job_is_stored_with_its_queued_event_and_RunJob_in_the_outbox()
    {
        using var client = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        using var response = await client.PostAsJsonAsync("/api/v1/jobs", Jobs.Valid(template: "small"));

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        var id = body.GetProperty("id").GetGuid();
        Assert.Equal("queued", body.GetProperty("status").GetString());
        Assert.Equal($"/api/v1/jobs/{id}", response.Headers.Location?.ToString());
        Assert.Equal($"/api/v1/jobs/{id}/logs", body.GetProperty("links").GetProperty("logs").GetString());
        Assert.Equal($"/api/v1/jobs/{id}/cancel", body.GetProperty("links").GetProperty("cancel").GetString());

        var (job, events, outbox) = await app.WithDbAsync(async db => (
            await db.Jobs.SingleAsync(j => j.Id == id),
            await db.JobEvents.Where(e => e.JobId == id).Select(e => e.Type).ToListAsync(),
            await db.OutboxMessages.ToListAsync()));
        Assert.Equal(30, job.TimeoutSeconds); // the template's default
        Assert.Equal(["job.queued"], events);
        var runJob = outbox.Select(m => JsonSerializer.Deserialize<RunJob>(m.Body, JsonSerializerOptions.Web)!).Single(m => m.JobId == id);
        Assert.Equal("small", runJob.RunnerTemplate);
        Assert.Equal(30, runJob.TimeoutSeconds);

        var fetched = await client.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}");
        Assert.Equal("acme/widgets", fetched.GetProperty("repository").GetString());
        Assert.Equal("queued", fetched.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Invalid_spec_lists_every_bad_field()
    {
        using var client = await app.ClientWithScopesAsync(ApiKeyScopes.Submit);
        var bad = new
        {
            repository = "not a repo",
            @ref = "refs/heads/main",
            commitSha = "xyz",
            runnerTemplate = "default",
            steps = new object[] { new { run = "echo ok" }, new { name = "empty" } },
            env = new Dictionary<string, string> { ["1BAD"] = "x" },
        };
        using var response = await client.PostAsJsonAsync("/api/v1/jobs", bad);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var errors = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors");
        var fields = errors.EnumerateObject().Select(p => p.Name).ToHashSet();
        Assert.Superset(new HashSet<string> { "repository", "commitSha", "steps[1].run", "env.1BAD" }, fields);
        Assert.Equal(0, await app.WithDbAsync(db => db.Jobs.CountAsync(j => j.Repository == "not a repo")));
    }

    [Fact]
    public async Task Timeout_beyond_the_template_maximum_is_refused()
    {
        using var client = await app.ClientWithScopesAsync(ApiKeyScopes.Submit);
        using var response = await client.PostAsJsonAsync("/api/v1/jobs", Jobs.Valid(template: "small", timeoutSeconds: 61));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var errors = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors");
        Assert.True(errors.TryGetProperty("timeoutSeconds", out _));
    }

    [Fact]
    public async Task Malformed_json_is_a_400_problem_not_a_500()
    {
        using var client = await app.ClientWithScopesAsync(ApiKeyScopes.Submit);
        using var broken = await client.PostAsync("/api/v1/jobs", new StringContent("{\"repository\": ", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, broken.StatusCode);
        Assert.Equal("application/problem+json", broken.Content.Headers.ContentType?.MediaType);

        using var wrongType = await client.PostAsync("/api/v1/jobs",
            new StringContent("{\"timeoutSeconds\": \"soon\"}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, wrongType.StatusCode);
        var problem = await wrongType.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("timeoutSeconds", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Body_over_one_MiB_is_413_whether_announced_or_streamed()
    {
        using var client = await app.ClientWithScopesAsync(ApiKeyScopes.Submit);
        var huge = "{\"name\":\"" + new string('x', 1024 * 1024 + 10) + "\"}";

        using var announced = await client.PostAsync("/api/v1/jobs", new StringContent(huge, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, announced.StatusCode);
        Assert.Equal("application/problem+json", announced.Content.Headers.ContentType?.MediaType);

        // No Content-Length: the cap must hold while reading.
        var chunked = new StreamContent(new NonSeekableStream(Encoding.UTF8.GetBytes(huge)));
        chunked.Headers.ContentType = new("application/json");
        using var streamed = await client.PostAsync("/api/v1/jobs", chunked);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, streamed.StatusCode);
    }

    [Fact]
    public async Task Unknown_template_is_422_naming_runnerTemplate()
    {
        using var client = await app.ClientWithScopesAsync(ApiKeyScopes.Submit);
        using var response = await client.PostAsJsonAsync("/api/v1/jobs", Jobs.Valid(template: "gpu-large"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(problem.GetProperty("errors").TryGetProperty("runnerTemplate", out _));
        Assert.Contains("gpu-large", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Missing_invalid_or_revoked_keys_get_401_and_missing_scope_403()
    {
        using var anonymous = app.CreateClient();
        using var noKey = await anonymous.PostAsJsonAsync("/api/v1/jobs", Jobs.Valid());
        Assert.Equal(HttpStatusCode.Unauthorized, noKey.StatusCode);
        Assert.Contains("Bearer", noKey.Headers.WwwAuthenticate.ToString());
        Assert.Equal("application/problem+json", noKey.Content.Headers.ContentType?.MediaType);

        using var forged = app.ClientWithKey(ApiKeySecret.Generate());
        using var forgedAnswer = await forged.GetAsync("/api/v1/jobs");
        Assert.Equal(HttpStatusCode.Unauthorized, forgedAnswer.StatusCode);
        Assert.Contains("invalid_token", forgedAnswer.Headers.WwwAuthenticate.ToString());

        using var readOnly = await app.ClientWithScopesAsync(ApiKeyScopes.Read);
        using var forbidden = await readOnly.PostAsJsonAsync("/api/v1/jobs", Jobs.Valid());
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        Assert.Equal("submit", (await forbidden.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("requiredScope").GetString());
        using var readAllowed = await readOnly.GetAsync("/api/v1/jobs");
        Assert.Equal(HttpStatusCode.OK, readAllowed.StatusCode);
        using var adminOnly = await readOnly.GetAsync("/api/v1/api-keys");
        Assert.Equal(HttpStatusCode.Forbidden, adminOnly.StatusCode);

        // Revoke a key: it stops working at once.
        using var admin = app.AdminClient();
        using var created = await admin.PostAsJsonAsync("/api/v1/api-keys", new { name = "to-revoke", scopes = new[] { "read" }, repositories = new[] { "acme/*" } });
        var key = await created.Content.ReadFromJsonAsync<JsonElement>();
        using var revokedClient = app.ClientWithKey(key.GetProperty("key").GetString()!);
        Assert.Equal(HttpStatusCode.OK, (await revokedClient.GetAsync("/api/v1/jobs")).StatusCode);
        using var revoke = await admin.DeleteAsync($"/api/v1/api-keys/{key.GetProperty("id").GetGuid()}");
        Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await revokedClient.GetAsync("/api/v1/jobs")).StatusCode);
    }

    [Fact]
    public async Task Admin_key_listing_never_shows_keys_or_hashes_and_admin_implies_submit()
    {
        using var admin = app.AdminClient();
        var list = await admin.GetStringAsync("/api/v1/api-keys");
        Assert.DoesNotContain(app.AdminKey, list);
        Assert.DoesNotContain("hash", list, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("bootstrap-admin", list);
        Assert.Contains(app.AdminKey[..ApiKeySecret.PrefixLength], list);

        await Jobs.SubmitAsync(admin); // admin implies submit

        using var badScopes = await admin.PostAsJsonAsync("/api/v1/api-keys", new { name = "", scopes = new[] { "root" } });
        Assert.Equal(HttpStatusCode.BadRequest, badScopes.StatusCode);
        var errors = (await badScopes.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors");
        Assert.True(errors.TryGetProperty("name", out _));
        Assert.True(errors.TryGetProperty("scopes[0]", out _));
    }

    [Fact]
    public async Task Retry_with_the_same_Idempotency_Key_returns_the_same_job_and_a_changed_body_is_422()
    {
        using var client = await app.ClientWithScopesAsync(ApiKeyScopes.Submit);
        var key = Guid.NewGuid().ToString();
        async Task<HttpResponseMessage> Post(object body)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/jobs") { Content = JsonContent.Create(body) };
            request.Headers.Add("Idempotency-Key", key);
            return await client.SendAsync(request);
        }

        // Two concurrent retries and a late one: one job, one RunJob.
        var first = await Task.WhenAll(Post(Jobs.Valid(name: "idem")), Post(Jobs.Valid(name: "idem")));
        using var third = await Post(Jobs.Valid(name: "idem"));
        var ids = new List<Guid>();
        foreach (var response in first.Append(third))
        {
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            ids.Add((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid());
            response.Dispose();
        }
        Assert.Single(ids.Distinct());
        var id = ids[0];
        Assert.Equal(1, await app.WithDbAsync(db => db.OutboxMessages.CountAsync(m => m.Body.Contains(id.ToString()))));

        using var changed = await Post(Jobs.Valid(name: "something else"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, changed.StatusCode);

        // The same key from another API key is a different submission.
        using var other = await app.ClientWithScopesAsync(ApiKeyScopes.Submit);
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/jobs") { Content = JsonContent.Create(Jobs.Valid(name: "idem")) };
        request.Headers.Add("Idempotency-Key", key);
        using var fromOther = await other.SendAsync(request);
        Assert.Equal(HttpStatusCode.Accepted, fromOther.StatusCode);
        Assert.NotEqual(id, (await fromOther.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid());
    }

    [Fact]
    public async Task Openapi_document_and_reference_page_are_served_with_the_bearer_scheme()
    {
        using var client = app.CreateClient();
        var document = await client.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        Assert.True(document.GetProperty("paths").TryGetProperty("/api/v1/jobs", out _));
        var schemes = document.GetProperty("components").GetProperty("securitySchemes");
        Assert.Equal("bearer", schemes.GetProperty("ApiKey").GetProperty("scheme").GetString());
        using var scalar = await client.GetAsync("/scalar");
        Assert.Equal(HttpStatusCode.OK, scalar.StatusCode);
    }

    /// <summary>A stream with no length, so HttpClient sends it chunked.</summary>
    private sealed class NonSeekableStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
    }
}
