using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using EphemeralCI.JobTokens;
using EphemeralCI.SecretsBroker;
using EphemeralCI.SecretsBroker.Infrastructure;
using EphemeralCI.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Xunit;

namespace EphemeralCI.IntegrationTests.SecretsBroker;

/// <summary>
/// The secrets broker module composed into a bare WebApplication (as the all-in-one server will
/// compose it) against the real Redis from eng/services.sh.
/// </summary>
public sealed class ExchangeApiTests : IAsyncLifetime
{
    private const string Exchange = "/api/v1/secrets/exchange";

    private WebApplication _app = null!;
    private HttpClient _client = null!;
    private JobTokenService _tokens = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing", ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseTestServer();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:redis"] = RealServices.Redis,
            ["JobTokens:SigningKey"] = NewSigningKey(),
        });
        builder.AddSecretsBroker();
        _app = builder.Build();
        _app.MapHealthChecks("/health");
        _app.MapSecretsBroker();
        await _app.StartAsync();
        _client = _app.GetTestClient();
        _tokens = _app.Services.GetRequiredService<JobTokenService>();
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _app.DisposeAsync();
    }

    [Fact]
    public async Task First_exchange_yields_the_job_and_the_second_is_refused_as_replay()
    {
        var jobId = Guid.NewGuid();
        var token = Mint(jobId);

        using var first = await ExchangeAsync(token);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var body = await first.Content.ReadFromJsonAsync<ExchangeBody>();
        Assert.Equal(jobId, body!.JobId);
        Assert.NotNull(body.Secrets);
        Assert.Empty(body.Secrets);

        using var second = await ExchangeAsync(token);
        Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
        Assert.Equal("application/problem+json", second.Content.Headers.ContentType?.MediaType);
        var problem = await second.Content.ReadFromJsonAsync<ProblemDetails>();
        Assert.Equal("token already exchanged (replay)", problem!.Title);
        Assert.Equal(409, problem.Status);
    }

    [Fact]
    public async Task Tokens_of_different_jobs_are_exchanged_independently()
    {
        var jobA = Guid.NewGuid();
        var jobB = Guid.NewGuid();
        var tokenA = Mint(jobA);
        var tokenB = Mint(jobB);

        using var a = await ExchangeAsync(tokenA);
        using var b = await ExchangeAsync(tokenB);
        using var aAgain = await ExchangeAsync(tokenA);

        Assert.Equal(HttpStatusCode.OK, a.StatusCode);
        Assert.Equal(HttpStatusCode.OK, b.StatusCode);
        Assert.Equal(jobB, (await b.Content.ReadFromJsonAsync<ExchangeBody>())!.JobId);
        Assert.Equal(HttpStatusCode.Conflict, aAgain.StatusCode);
    }

    [Fact]
    public async Task A_second_token_for_the_same_job_is_its_own_single_use()
    {
        // The provisioner may mint a new token for a retried runner: each token counts once.
        var jobId = Guid.NewGuid();

        using var first = await ExchangeAsync(Mint(jobId));
        using var second = await ExchangeAsync(Mint(jobId));

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
    }

    [Fact]
    public async Task Concurrent_exchanges_of_one_token_let_exactly_one_through()
    {
        var token = Mint(Guid.NewGuid());

        var responses = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => ExchangeAsync(token)));

        Assert.Single(responses, r => r.StatusCode == HttpStatusCode.OK);
        Assert.Equal(15, responses.Count(r => r.StatusCode == HttpStatusCode.Conflict));
        foreach (var r in responses) r.Dispose();
    }

    [Fact]
    public async Task Replay_mark_lives_in_redis_for_the_rest_of_the_tokens_lifetime()
    {
        var token = Mint(Guid.NewGuid(), deadline: DateTimeOffset.UtcNow.AddMinutes(30));
        var claims = await _tokens.ValidateAsync(token);
        var beforeExchange = DateTimeOffset.UtcNow;
        using var response = await ExchangeAsync(token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var ttl = await _app.Services.GetRequiredService<IConnectionMultiplexer>().GetDatabase()
            .KeyTimeToLiveAsync(RedisTokenReplayGuard.KeyPrefix + claims!.TokenId);

        Assert.NotNull(ttl);
        Assert.True(ttl > TimeSpan.Zero);
        // Set after beforeExchange, so at most the token's remaining lifetime then, plus the validator's skew.
        Assert.True(ttl <= claims.ExpiresAt - beforeExchange + TimeSpan.FromSeconds(5), $"mark outlives the token: {ttl}");
    }

    [Fact]
    public async Task Tampered_token_is_401_problem_and_does_not_spend_the_real_one()
    {
        var token = Mint(Guid.NewGuid());
        var parts = token.Split('.');
        // Same signature, different claims: the payload's last character flipped.
        var payload = parts[1][..^1] + (parts[1][^1] == 'A' ? 'B' : 'A');
        var tampered = string.Join('.', parts[0], payload, parts[2]);

        using var refused = await ExchangeAsync(tampered);
        await AssertUnauthorizedProblem(refused);

        using var real = await ExchangeAsync(token);
        Assert.Equal(HttpStatusCode.OK, real.StatusCode);
    }

    [Fact]
    public async Task Token_signed_with_another_key_is_401()
    {
        var foreign = new JobTokenService(Options.Create(new JobTokenOptions { SigningKey = NewSigningKey() }), TimeProvider.System)
            .Issue(Guid.NewGuid(), "acme/widgets", "refs/heads/main", DateTimeOffset.UtcNow.AddMinutes(10));

        using var response = await ExchangeAsync(foreign);

        await AssertUnauthorizedProblem(response);
    }

    [Fact]
    public async Task Expired_token_is_401()
    {
        // Deadline long past: expiry (deadline + margin) is behind us too.
        using var response = await ExchangeAsync(Mint(Guid.NewGuid(), deadline: DateTimeOffset.UtcNow.AddHours(-1)));

        await AssertUnauthorizedProblem(response);
    }

    [Fact]
    public async Task Missing_token_is_401_with_a_bearer_challenge()
    {
        using var response = await _client.PostAsync(Exchange, null);

        await AssertUnauthorizedProblem(response);
        Assert.Contains("Bearer", response.Headers.WwwAuthenticate.ToString());
    }

    [Fact]
    public async Task Health_includes_redis()
    {
        using var response = await _client.GetAsync("/health");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Healthy", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public void Missing_redis_setting_stops_start_up_with_its_name()
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing", ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration["JobTokens:SigningKey"] = NewSigningKey();

        var e = Assert.Throws<InvalidOperationException>(() => builder.AddSecretsBroker());

        Assert.Contains("ConnectionStrings:redis", e.Message);
    }

    [Fact]
    public async Task A_replay_guard_registered_by_the_host_replaces_redis()
    {
        // How the all-in-one server plugs in its in-process store: no Redis setting needed then.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing", ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseTestServer();
        builder.Configuration["JobTokens:SigningKey"] = NewSigningKey();
        builder.Services.AddSingleton<ITokenReplayGuard, RefuseEverything>();
        builder.AddSecretsBroker();
        await using var app = builder.Build();
        app.MapSecretsBroker();
        await app.StartAsync();
        Assert.Null(app.Services.GetService<IConnectionMultiplexer>());
        var token = app.Services.GetRequiredService<JobTokenService>().Issue(Guid.NewGuid(), "r", "refs/heads/main", DateTimeOffset.UtcNow.AddMinutes(5));

        using var request = new HttpRequestMessage(HttpMethod.Post, Exchange) { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", token) } };
        using var response = await app.GetTestClient().SendAsync(request);

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
    }

    private string Mint(Guid jobId, DateTimeOffset? deadline = null) =>
        _tokens.Issue(jobId, "acme/widgets", "refs/heads/main", deadline ?? DateTimeOffset.UtcNow.AddMinutes(10));

    private Task<HttpResponseMessage> ExchangeAsync(string token)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, Exchange) { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", token) } };
        return _client.SendAsync(request);
    }

    private static async Task AssertUnauthorizedProblem(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<ProblemDetails>();
        Assert.Equal(401, problem!.Status);
        Assert.False(string.IsNullOrEmpty(problem.Detail));
    }

    private static string NewSigningKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    private sealed record ExchangeBody(Guid JobId, Dictionary<string, string> Secrets);

    private sealed class RefuseEverything : ITokenReplayGuard
    {
        public Task<bool> TryConsumeAsync(string tokenId, DateTimeOffset tokenExpiresAt, CancellationToken cancellationToken = default) =>
            Task.FromResult(false);
    }
}
