using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Auth;
using EphemeralCI.Intake.Model;
using Microsoft.EntityFrameworkCore;
using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>
/// Issue 13, played by a hostile API client: a key bound to acme/a tries to claim, read, follow and cancel
/// what is not its own. Every refusal is problem details and leaves nothing stored.
/// </summary>
public sealed class JobIdentityTests(IntakeFactory app) : IClassFixture<IntakeFactory>
{
    private static readonly string[] SubmitRead = [ApiKeyScopes.Submit, ApiKeyScopes.Read];

    private static object Job(string repository, string gitRef = "refs/heads/main", string template = "default", string? environment = null) => new
    {
        name = "identity",
        repository,
        @ref = gitRef,
        commitSha = Jobs.Sha,
        runnerTemplate = template,
        environment,
        steps = new object[] { new { run = "echo hi" } },
    };

    private async Task<(int Jobs, int Outbox)> StoredAsync() =>
        await app.WithDbAsync(async db => (await db.Jobs.CountAsync(), await db.OutboxMessages.CountAsync()));

    private static async Task AssertForbiddenFieldAsync(HttpResponseMessage response, string field)
    {
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(field, problem.GetProperty("field").GetString());
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
    }

    [Theory]
    [InlineData("repository")]
    [InlineData("ref")]
    [InlineData("runnerTemplate")]
    [InlineData("environment")]
    public async Task A_key_cannot_claim_outside_its_bindings_and_nothing_is_stored(string field)
    {
        using var client = await app.ClientWithBindingsAsync(SubmitRead, ["acme/a"], refs: ["refs/heads/main", "refs/heads/release/*"], templates: ["default"]);
        var body = field switch
        {
            "repository" => Job("acme/b"),
            "ref" => Job("acme/a", gitRef: "refs/heads/release/1.0/hotfix"), // '*' stops at '/'
            "runnerTemplate" => Job("acme/a", template: "small"),
            _ => Job("acme/a", environment: "production"),
        };
        var before = await StoredAsync();

        using var response = await client.PostAsJsonAsync("/api/v1/jobs", body);

        await AssertForbiddenFieldAsync(response, field);
        Assert.Equal(before, await StoredAsync());
    }

    [Fact]
    public async Task Within_its_bindings_a_key_submits_and_an_allowed_environment_reaches_the_provisioner()
    {
        using var client = await app.ClientWithBindingsAsync(SubmitRead, ["ACME/*"], refs: ["refs/heads/release/*"], environments: ["production"]);
        var id = await Jobs.SubmitAsync(client, Job("acme/a", gitRef: "refs/heads/release/1.0", environment: "production"));

        var (job, runJob) = await app.WithDbAsync(async db => (
            await db.Jobs.SingleAsync(j => j.Id == id),
            (await db.OutboxMessages.ToListAsync()).Select(m => JsonSerializer.Deserialize<RunJob>(m.Body, JsonSerializerOptions.Web)!).Single(m => m.JobId == id)));
        Assert.Equal("production", job.Environment);
        Assert.StartsWith("api-key:", job.SubmittedBy);
        Assert.Equal("production", runJob.Environment);
    }

    [Fact]
    public async Task Another_repositorys_job_is_not_found_for_get_events_logs_follow_and_cancel()
    {
        using var admin = app.AdminClient();
        var theirs = await Jobs.SubmitAsync(admin, Job("acme/b"));
        using var mine = await app.ClientWithBindingsAsync(SubmitRead, ["acme/a"]);
        var own = await Jobs.SubmitAsync(mine, Job("acme/a"));

        foreach (var path in new[] { $"/api/v1/jobs/{theirs}", $"/api/v1/jobs/{theirs}/events", $"/api/v1/jobs/{theirs}/logs", $"/api/v1/jobs/{theirs}/logs?follow=true" })
        {
            using var response = await mine.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{path}: {response.StatusCode}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            // Exactly the answer for a job that does not exist: nothing tells that it does.
            Assert.Equal($"There is no job {theirs}.", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString());
        }
        using (var cancel = await mine.PostAsync($"/api/v1/jobs/{theirs}/cancel", null))
        {
            Assert.Equal(HttpStatusCode.NotFound, cancel.StatusCode);
        }
        var job = await app.WithDbAsync(db => db.Jobs.AsNoTracking().SingleAsync(j => j.Id == theirs));
        Assert.Equal(EphemeralCI.Contracts.Jobs.JobStatus.Queued, job.Status);

        // The list holds only its own repository's jobs, also when asked for the other one by name.
        var list = await mine.GetFromJsonAsync<JsonElement>("/api/v1/jobs?pageSize=100");
        var repositories = list.GetProperty("items").EnumerateArray().Select(j => j.GetProperty("repository").GetString()).Distinct().ToList();
        Assert.Equal(["acme/a"], repositories);
        var asked = await mine.GetFromJsonAsync<JsonElement>("/api/v1/jobs?repository=acme/b");
        Assert.Equal(0, asked.GetProperty("totalCount").GetInt32());

        // Its own job it may read and cancel; the admin key sees both.
        Assert.Equal(HttpStatusCode.OK, (await mine.GetAsync($"/api/v1/jobs/{own}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await mine.PostAsync($"/api/v1/jobs/{own}/cancel", null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync($"/api/v1/jobs/{theirs}")).StatusCode);
        var all = await admin.GetFromJsonAsync<JsonElement>("/api/v1/jobs?pageSize=100");
        Assert.Contains(all.GetProperty("items").EnumerateArray(), j => j.GetProperty("id").GetGuid() == theirs);
    }

    [Fact]
    public async Task A_non_admin_key_needs_repositories_and_a_key_made_before_bindings_is_refused_with_a_reason()
    {
        using var admin = app.AdminClient();
        using var unbound = await admin.PostAsJsonAsync("/api/v1/api-keys", new { name = "no-repos", scopes = SubmitRead });
        Assert.Equal(HttpStatusCode.BadRequest, unbound.StatusCode);
        Assert.True((await unbound.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors").TryGetProperty("repositories", out _));

        // A key as the upgrade leaves it: scopes, no bindings.
        var legacy = ApiKeySecret.Generate();
        await app.WithDbAsync(async db =>
        {
            db.ApiKeys.Add(new ApiKey
            {
                Id = Guid.CreateVersion7(), Name = "legacy", Prefix = ApiKeySecret.PrefixOf(legacy), Hash = ApiKeySecret.Hash(legacy),
                Scopes = [ApiKeyScopes.Submit, ApiKeyScopes.Read], CreatedAt = DateTimeOffset.UtcNow,
            });
            return await db.SaveChangesAsync();
        });
        using var client = app.ClientWithKey(legacy);
        var before = await StoredAsync();
        foreach (var response in new[] { await client.PostAsJsonAsync("/api/v1/jobs", Job("acme/a")), await client.GetAsync("/api/v1/jobs") })
        {
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("API key not bound to repositories", problem.GetProperty("title").GetString());
            Assert.Contains("--repo", problem.GetProperty("detail").GetString());
        }
        Assert.Equal(before, await StoredAsync());

        var keys = await admin.GetFromJsonAsync<JsonElement>("/api/v1/api-keys");
        Assert.False(keys.EnumerateArray().Single(k => k.GetProperty("name").GetString() == "legacy").GetProperty("bound").GetBoolean());
    }
}
