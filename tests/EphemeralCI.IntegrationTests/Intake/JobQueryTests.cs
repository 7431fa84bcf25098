using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Auth;
using Microsoft.EntityFrameworkCore;
using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>Listing, reading, cancelling and the timeline.</summary>
public sealed class JobQueryTests(IntakeFactory app) : IClassFixture<IntakeFactory>
{
    [Fact]
    public async Task List_filters_by_repository_and_status_and_pages_newest_first()
    {
        using var client = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var repository = $"acme/list-{Guid.NewGuid():N}"[..30];
        var ids = new List<Guid>();
        for (var i = 0; i < 5; i++) ids.Add(await Jobs.SubmitAsync(client, Jobs.Valid(repository: repository, name: $"job {i}")));
        using var cancelled = await client.PostAsync($"/api/v1/jobs/{ids[1]}/cancel", null);
        cancelled.EnsureSuccessStatusCode();

        var page1 = await client.GetFromJsonAsync<JsonElement>($"/api/v1/jobs?repository={repository}&pageSize=2");
        Assert.Equal(5, page1.GetProperty("totalCount").GetInt32());
        Assert.Equal([ids[4], ids[3]], page1.GetProperty("items").EnumerateArray().Select(j => j.GetProperty("id").GetGuid()).ToArray());
        var page3 = await client.GetFromJsonAsync<JsonElement>($"/api/v1/jobs?repository={repository}&pageSize=2&page=3");
        Assert.Equal([ids[0]], page3.GetProperty("items").EnumerateArray().Select(j => j.GetProperty("id").GetGuid()).ToArray());

        var onlyCancelled = await client.GetFromJsonAsync<JsonElement>($"/api/v1/jobs?repository={repository}&status=cancelled");
        var item = Assert.Single(onlyCancelled.GetProperty("items").EnumerateArray());
        Assert.Equal(ids[1], item.GetProperty("id").GetGuid());
        Assert.Equal("cancelled", item.GetProperty("status").GetString());
    }

    [Fact]
    public async Task List_pages_with_the_next_cursor_to_the_end_and_a_bad_cursor_is_400()
    {
        using var client = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var repository = $"acme/cursor-{Guid.NewGuid():N}"[..30];
        var ids = new List<Guid>();
        for (var i = 0; i < 5; i++) ids.Add(await Jobs.SubmitAsync(client, Jobs.Valid(repository: repository, name: $"job {i}")));

        var seen = new List<Guid>();
        var page = await client.GetFromJsonAsync<JsonElement>($"/api/v1/jobs?repository={repository}&pageSize=2");
        Assert.Equal(5, page.GetProperty("totalCount").GetInt32());
        while (true)
        {
            seen.AddRange(page.GetProperty("items").EnumerateArray().Select(j => j.GetProperty("id").GetGuid()));
            if (page.GetProperty("nextCursor").GetString() is not { } next) break;
            page = await client.GetFromJsonAsync<JsonElement>($"/api/v1/jobs?repository={repository}&pageSize=2&cursor={Uri.EscapeDataString(next)}");
            Assert.Equal(JsonValueKind.Null, page.GetProperty("totalCount").ValueKind);
        }
        Assert.Equal(Enumerable.Reverse(ids), seen);

        using var bad = await client.GetAsync("/api/v1/jobs?cursor=not-a-cursor");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.True((await bad.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors").TryGetProperty("cursor", out _));
    }

    [Fact]
    public async Task Bad_list_parameters_are_400_naming_each()
    {
        using var client = await app.ClientWithScopesAsync(ApiKeyScopes.Read);
        using var response = await client.GetAsync("/api/v1/jobs?status=sleeping&page=0&pageSize=1000");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var errors = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors");
        Assert.Equal(["page", "pageSize", "status"], errors.EnumerateObject().Select(p => p.Name).Order().ToArray());
    }

    [Fact]
    public async Task Cancel_makes_the_job_cancelled_at_once_publishes_CancelJob_and_a_second_cancel_is_409()
    {
        using var client = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(client);

        using var cancel = await client.PostAsync($"/api/v1/jobs/{id}/cancel", null);
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        var job = await cancel.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("cancelled", job.GetProperty("status").GetString());
        Assert.NotEqual(JsonValueKind.Null, job.GetProperty("finishedAt").ValueKind);

        var timeline = await client.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}/events");
        Assert.Equal(["job.queued", "job.cancel_requested", "job.cancelled"],
            timeline.GetProperty("events").EnumerateArray().Select(e => e.GetProperty("type").GetString()!).ToArray());
        var cancelMessages = await app.WithDbAsync(db => db.OutboxMessages.Where(m => m.MessageType.Contains(nameof(CancelJob))).ToListAsync());
        Assert.Contains(cancelMessages, m => JsonSerializer.Deserialize<CancelJob>(m.Body, JsonSerializerOptions.Web)!.JobId == id);

        using var again = await client.PostAsync($"/api/v1/jobs/{id}/cancel", null);
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        Assert.Equal("application/problem+json", again.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Unknown_job_is_404_everywhere()
    {
        using var client = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var unknown = Guid.NewGuid();
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/api/v1/jobs/{unknown}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsync($"/api/v1/jobs/{unknown}/cancel", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/api/v1/jobs/{unknown}/events")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/api/v1/jobs/{unknown}/logs")).StatusCode);
    }
}
