using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.Intake.Auth;
using EphemeralCI.JobTokens;
using MassTransit;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>An intake whose revocation list never revokes: the runner API's attempt check is all that stands.</summary>
public sealed class RevocationLostIntakeFactory : IntakeFactory
{
    private sealed class NeverRevoked : IJobRevocationList
    {
        public Task RevokeAsync(Guid jobId, int attempt, TimeSpan retention, CancellationToken cancellationToken = default) => Task.CompletedTask;
        public Task<bool> IsRevokedAsync(Guid jobId, int attempt, CancellationToken cancellationToken = default) => Task.FromResult(false);
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.ConfigureTestServices(services => services.AddSingleton<IJobRevocationList, NeverRevoked>());
    }
}

/// <summary>
/// Defence in depth behind revocation: a lost runner's token whose revocation failed (Redis lost the mark, a
/// replica never saw it) must still not speak for the job's next attempt — every runner call checks the token's
/// attempt against the job's.
/// </summary>
public sealed class AttemptCheckTests(RevocationLostIntakeFactory app) : IClassFixture<RevocationLostIntakeFactory>
{
    [Fact]
    public async Task An_earlier_attempts_unrevoked_token_is_refused_on_every_runner_call()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var body = JsonSerializer.SerializeToNode(Jobs.Valid(), JsonSerializerOptions.Web)!.AsObject();
        body["retry"] = new JsonObject { ["infrastructure"] = 1 };
        body.Remove("secrets");
        body.Remove("caches");
        var id = await Jobs.SubmitAsync(ci, body);
        var now = DateTimeOffset.UtcNow;

        using var first = app.RunnerClient(id);
        Assert.Equal(HttpStatusCode.OK, (await first.GetAsync(RunnerApiRoutes.Job)).StatusCode);
        await app.DeliverAsync(new RunnerFinished(id, "runner-c1", RunnerOutcome.Lost, null, "node lost", now));
        await app.DeliverAsync(new RunnerDestroyed(id, "runner-c1", now.AddSeconds(1), Attempt: 1));
        var job = await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}");
        Assert.Equal(2, job.GetProperty("attempt").GetInt32());

        // Not 401: the token is still "valid" here. 409 from the attempt check, on each kind of call.
        Assert.Equal(HttpStatusCode.Conflict, (await first.GetAsync(RunnerApiRoutes.Job)).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await first.PostAsync($"{RunnerApiRoutes.Logs}?offset=0",
            new StringContent("forged\n", Encoding.UTF8, "text/plain"))).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await first.PostAsJsonAsync(RunnerApiRoutes.Events,
            new RunnerStepEvent(JobEventTypes.StepFinished, 0, "one", 0, now), JsonSerializerOptions.Web)).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await first.PostAsJsonAsync(RunnerApiRoutes.Complete,
            new RunnerCompletion(true, 0, null), JsonSerializerOptions.Web)).StatusCode);

        // Nothing of it landed: the job waits for attempt 2, with no log and no step entry from the stale runner.
        job = await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}");
        Assert.Equal("queued", job.GetProperty("status").GetString());
        Assert.Equal("", await ci.GetStringAsync($"/api/v1/jobs/{id}/logs"));
        Assert.Equal(0, await app.CountEventsAsync(id, JobEventTypes.StepFinished));

        // The next attempt's own token works.
        using var second = app.RunnerClient(id, attempt: 2);
        Assert.Equal(HttpStatusCode.OK, (await second.GetAsync(RunnerApiRoutes.Job)).StatusCode);
    }
}
