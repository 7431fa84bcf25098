using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.JobTokens;
using EphemeralCI.IntegrationTests.Cache;
using EphemeralCI.IntegrationTests.Infrastructure;
using EphemeralCI.IntegrationTests.Intake;
using EphemeralCI.IntegrationTests.SecretsBroker;
using MassTransit;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Identity;

/// <summary>
/// Issue 13: a job token dies with its job in every service. The intake, the cache and the broker run
/// as separate apps on the one real Redis (the distributed topology); only the intake hears that the
/// runner finished, and all three refuse the job's tokens afterwards — the revocation list is shared.
/// </summary>
public sealed class JobTokenRevocationTests(IntakeFactory intake) : IClassFixture<IntakeFactory>
{
    [Fact]
    public async Task A_token_used_after_its_job_ended_is_refused_by_intake_cache_and_broker()
    {
        await using var broker = await BrokerTestApp.StartAsync();
        await using var cache = await CacheTestApp.StartAsync(1024 * 1024, fileSystem: true,
            settings: new Dictionary<string, string?> { ["ConnectionStrings:redis"] = RealServices.Redis });

        using var admin = intake.AdminClient();
        var jobId = await Jobs.SubmitAsync(admin);
        using var runner = intake.RunnerClient(jobId);
        var cacheToken = cache.Tokens.Issue(jobId, "acme/widgets", "refs/heads/main", DateTimeOffset.UtcNow.AddHours(1));
        var brokerToken = await broker.MintAsync(jobId);
        var cacheKey = $"/cache/cas/{new string('a', 64)}";

        // While the job runs, each token works.
        Assert.Equal(HttpStatusCode.OK, (await runner.GetAsync(RunnerApiRoutes.Job)).StatusCode);
        using (var miss = await CacheGetAsync(cache, cacheKey, cacheToken)) Assert.Equal(HttpStatusCode.NotFound, miss.StatusCode);

        await intake.Services.GetRequiredService<IBus>().Publish(new RunnerFinished(jobId, "runner-x", RunnerOutcome.Exited, 0, null, DateTimeOffset.UtcNow));
        await IntakeFactory.EventuallyAsync(
            async () => (await intake.WithDbAsync(db => db.Jobs.AsNoTracking().SingleAsync(j => j.Id == jobId))).Status.IsTerminal(), "the job to end");

        using var fromIntake = await runner.GetAsync(RunnerApiRoutes.Job);
        await AssertRevokedAsync(fromIntake);
        using var fromCache = await CacheGetAsync(cache, cacheKey, cacheToken);
        await AssertRevokedAsync(fromCache);
        using var fromBroker = await broker.ExchangeAsync(brokerToken, "NPM_TOKEN");
        await AssertRevokedAsync(fromBroker);
    }

    private static Task<HttpResponseMessage> CacheGetAsync(CacheTestApp cache, string path, string token)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return cache.Client.SendAsync(request);
    }

    private static async Task AssertRevokedAsync(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<ProblemDetails>();
        Assert.Equal(JobTokenGate.RevokedTitle, problem!.Title);
    }
}
