using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.JobTokens;
using EphemeralCI.SecretsBroker;
using EphemeralCI.SecretsBroker.Identity;
using EphemeralCI.SecretsBroker.Infrastructure;
using MassTransit;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using StackExchange.Redis;
using Xunit;

namespace EphemeralCI.IntegrationTests.SecretsBroker;

/// <summary>Exchange of broker-issued job tokens on real Postgres and Redis: exactly once, only the job's own secrets, never after the job.</summary>
public sealed class ExchangeApiTests : IAsyncLifetime
{
    private BrokerTestApp _broker = null!;

    public async Task InitializeAsync()
    {
        _broker = await BrokerTestApp.StartAsync();
        await _broker.PutSecretAsync("DEPLOY_KEY", "deploy-s3cr3t-value", ["acme/widgets"], ["refs/heads/main", "refs/tags/v*"]);
        await _broker.PutSecretAsync("NPM_TOKEN", "npm-t0ken-value", ["acme/*"], ["**"]);
        await _broker.PutSecretAsync("OTHER_KEY", "other-team-value", ["globex/*"], ["**"]);
        await _broker.PutSecretAsync("PROD_DB", "prod-db-password", ["acme/*"], ["refs/heads/main"], environment: "production");
    }

    public async Task DisposeAsync() => await _broker.DisposeAsync();

    [Fact]
    public async Task Job_gets_exactly_the_requested_secrets_its_repository_and_ref_allow()
    {
        var token = await _broker.MintAsync(Guid.NewGuid());

        var body = await ExchangeOkAsync(token, "DEPLOY_KEY", "NPM_TOKEN", "OTHER_KEY", "PROD_DB", "NO_SUCH");

        Assert.Equal(new Dictionary<string, string> { ["DEPLOY_KEY"] = "deploy-s3cr3t-value", ["NPM_TOKEN"] = "npm-t0ken-value" }, body.Secrets);
        Assert.Equal("repository-not-allowed", body.Denied!["OTHER_KEY"]);
        Assert.Equal("environment-not-allowed", body.Denied["PROD_DB"]);
        Assert.Equal("not-found", body.Denied["NO_SUCH"]);
    }

    [Fact]
    public async Task Unrequested_secrets_are_not_handed_out()
    {
        var body = await ExchangeOkAsync(await _broker.MintAsync(Guid.NewGuid()), "NPM_TOKEN");

        Assert.Equal(["NPM_TOKEN"], body.Secrets.Keys);
    }

    [Fact]
    public async Task Job_As_token_never_yields_job_Bs_secrets()
    {
        // Job B (globex) may read OTHER_KEY; job A (acme) asks for it with its own token.
        var tokenA = await _broker.MintAsync(Guid.NewGuid(), repository: "acme/widgets");
        var tokenB = await _broker.MintAsync(Guid.NewGuid(), repository: "globex/site");

        var a = await ExchangeOkAsync(tokenA, "OTHER_KEY", "DEPLOY_KEY");
        var b = await ExchangeOkAsync(tokenB, "OTHER_KEY", "DEPLOY_KEY");

        Assert.Equal(["DEPLOY_KEY"], a.Secrets.Keys);
        Assert.Equal(["OTHER_KEY"], b.Secrets.Keys);
        Assert.Equal("repository-not-allowed", b.Denied!["DEPLOY_KEY"]);
    }

    [Theory]
    [InlineData("refs/heads/feature/x", "ref-not-allowed")]
    [InlineData("refs/pull/7/merge", "ref-not-allowed")]
    [InlineData("refs/heads/main-evil", "ref-not-allowed")]
    public async Task Deploy_credentials_never_reach_a_feature_branch_or_pull_request(string gitRef, string reason)
    {
        var body = await ExchangeOkAsync(await _broker.MintAsync(Guid.NewGuid(), gitRef: gitRef), "DEPLOY_KEY");

        Assert.Empty(body.Secrets);
        Assert.Equal(reason, body.Denied!["DEPLOY_KEY"]);
    }

    [Fact]
    public async Task Release_tags_and_the_right_environment_are_admitted()
    {
        var tag = await ExchangeOkAsync(await _broker.MintAsync(Guid.NewGuid(), gitRef: "refs/tags/v1.2.3"), "DEPLOY_KEY");
        var prod = await ExchangeOkAsync(await _broker.MintAsync(Guid.NewGuid(), environment: "production"), "PROD_DB");

        Assert.Equal("deploy-s3cr3t-value", tag.Secrets["DEPLOY_KEY"]);
        Assert.Equal("prod-db-password", prod.Secrets["PROD_DB"]);
    }

    [Fact]
    public async Task Second_exchange_is_refused_as_replay()
    {
        var token = await _broker.MintAsync(Guid.NewGuid());
        await ExchangeOkAsync(token, "NPM_TOKEN");

        using var second = await _broker.ExchangeAsync(token, "NPM_TOKEN");

        Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
        var problem = await second.Content.ReadFromJsonAsync<ProblemDetails>();
        Assert.Equal("token already exchanged (replay)", problem!.Title);
        Assert.DoesNotContain("npm-t0ken-value", await second.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Concurrent_exchanges_of_one_token_let_exactly_one_through()
    {
        var token = await _broker.MintAsync(Guid.NewGuid());

        var responses = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => _broker.ExchangeAsync(token, "NPM_TOKEN")));

        Assert.Single(responses, r => r.StatusCode == HttpStatusCode.OK);
        Assert.Equal(15, responses.Count(r => r.StatusCode == HttpStatusCode.Conflict));
        foreach (var r in responses) r.Dispose();
    }

    [Fact]
    public async Task Replay_mark_lives_in_redis_for_the_rest_of_the_tokens_lifetime()
    {
        var token = await _broker.MintAsync(Guid.NewGuid(), deadline: DateTimeOffset.UtcNow.AddMinutes(30));
        var claims = await _broker.Service<JobTokenService>().ValidateAsync(token);
        var beforeExchange = DateTimeOffset.UtcNow;
        await ExchangeOkAsync(token);

        var ttl = await _broker.Service<IConnectionMultiplexer>().GetDatabase().KeyTimeToLiveAsync(RedisTokenReplayGuard.KeyPrefix + claims!.TokenId);

        Assert.NotNull(ttl);
        Assert.True(ttl > TimeSpan.Zero);
        Assert.True(ttl <= claims.ExpiresAt - beforeExchange + TimeSpan.FromSeconds(5), $"mark outlives the token: {ttl}");
    }

    [Fact]
    public async Task Exchange_after_the_job_ended_is_refused_and_recorded()
    {
        var jobId = Guid.NewGuid();
        var token = await _broker.MintAsync(jobId);

        await _broker.Service<IBus>().Publish(new RunnerFinished(jobId, "r1", RunnerOutcome.Exited, 0, null, DateTimeOffset.UtcNow));
        var revocations = _broker.Service<IJobRevocationList>();
        for (var i = 0; i < 100 && !await revocations.IsRevokedAsync(jobId, 1); i++) await Task.Delay(50);

        using var response = await _broker.ExchangeAsync(token, "NPM_TOKEN");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("token revoked", (await response.Content.ReadFromJsonAsync<ProblemDetails>())!.Title);
        // The consumer marks the job revoked first and writes its audit line right after: wait for it.
        var audit = await AuditAsync(jobId);
        for (var i = 0; i < 100 && !audit.Any(e => e.Action == "token.revoked"); i++)
        {
            await Task.Delay(50);
            audit = await AuditAsync(jobId);
        }
        Assert.Contains(audit, e => e.Action == "token.revoked");
        Assert.Contains(audit, e => e.Action == "exchange.denied" && e.Detail == "job ended: token revoked");
    }

    [Fact]
    public async Task Each_attempts_revocation_is_audited_once_however_often_and_concurrently_it_is_delivered()
    {
        var jobId = Guid.NewGuid();
        var bus = _broker.Service<IBus>();
        // A retried job: attempt 1's runner lost, attempt 2's finished; each message redelivered, several at once
        // (two broker replicas, or a redelivery racing the first delivery).
        await Task.WhenAll(Enumerable.Range(0, 6).Select(i => bus.Publish(i % 2 == 0
            ? new RunnerFinished(jobId, "r1", RunnerOutcome.Lost, null, "node lost", DateTimeOffset.UtcNow)
            : new RunnerFinished(jobId, "r2", RunnerOutcome.Exited, 0, null, DateTimeOffset.UtcNow, Attempt: 2))));

        var revocations = _broker.Service<IJobRevocationList>();
        for (var i = 0; i < 100 && !(await revocations.IsRevokedAsync(jobId, 1) && await revocations.IsRevokedAsync(jobId, 2)); i++) await Task.Delay(50);
        var audit = await AuditAsync(jobId);
        for (var i = 0; i < 100 && audit.Count(e => e.Action == "token.revoked") < 2; i++)
        {
            await Task.Delay(50);
            audit = await AuditAsync(jobId);
        }
        await Task.Delay(500); // the late handlers of the same messages, if they were to write again
        audit = await AuditAsync(jobId);
        var revoked = audit.Where(e => e.Action == "token.revoked").ToList();
        Assert.Equal([1, 2], revoked.Select(e => e.Attempt).Order());
        Assert.All(revoked, e => Assert.DoesNotContain("attempt=", e.Detail));
    }

    [Fact]
    public async Task Tampered_token_is_refused_and_does_not_spend_the_real_one()
    {
        var token = await _broker.MintAsync(Guid.NewGuid(), repository: "globex/site");
        var parts = token.Split('.');
        // Claim another repository, keep the signature.
        var payload = Base64UrlEncoder.Decode(parts[1]).Replace("globex/site", "acme/widgets", StringComparison.Ordinal);
        var tampered = string.Join('.', parts[0], Base64UrlEncoder.Encode(payload), parts[2]);

        using var refused = await _broker.ExchangeAsync(tampered, "DEPLOY_KEY");
        await AssertUnauthorizedProblem(refused);

        var real = await ExchangeOkAsync(token, "DEPLOY_KEY");
        Assert.Empty(real.Secrets);
    }

    [Fact]
    public async Task Expired_token_is_refused()
    {
        // The mint endpoint refuses a past deadline, so mint directly with the broker's issuer.
        var minted = await _broker.Service<JobIdentityIssuer>().MintAsync(
            new JobTokenRequest(Guid.NewGuid(), "acme/widgets", "refs/heads/main", DateTimeOffset.UtcNow.AddHours(-1)), "test", default);

        using var response = await _broker.ExchangeAsync(minted.Token, "NPM_TOKEN");

        await AssertUnauthorizedProblem(response);
    }

    [Theory]
    [InlineData("ephemeralci", "someone-else")]
    [InlineData("https://evil.example", "ephemeralci-runner")]
    public async Task Token_for_another_audience_or_from_another_issuer_is_refused(string issuer, string audience)
    {
        // Signed with the broker's real key: only iss/aud are wrong.
        var (kid, key) = await _broker.Service<SigningKeyRing>().GetSignerAsync(default);
        var token = ForgeWith(key, SecurityAlgorithms.EcdsaSha256, issuer, audience);

        using var response = await _broker.ExchangeAsync(token, "NPM_TOKEN");

        Assert.False(string.IsNullOrEmpty(kid));
        await AssertUnauthorizedProblem(response);
    }

    [Fact]
    public async Task Token_from_another_key_or_an_hs256_token_is_refused()
    {
        using var foreignKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var foreign = ForgeWith(new ECDsaSecurityKey(foreignKey) { KeyId = "foreign" }, SecurityAlgorithms.EcdsaSha256, "ephemeralci", "ephemeralci-runner");
        // The interim shared-key token is not accepted once the broker signs tokens.
        var hs256 = new JobTokenService(Options.Create(new JobTokenOptions { SigningKey = BrokerTestApp.NewKek() }), TimeProvider.System)
            .Issue(Guid.NewGuid(), "acme/widgets", "refs/heads/main", DateTimeOffset.UtcNow.AddMinutes(10));

        using var r1 = await _broker.ExchangeAsync(foreign, "NPM_TOKEN");
        using var r2 = await _broker.ExchangeAsync(hs256, "NPM_TOKEN");

        await AssertUnauthorizedProblem(r1);
        await AssertUnauthorizedProblem(r2);
    }

    [Fact]
    public async Task Missing_token_is_401_with_a_bearer_challenge()
    {
        using var response = await _broker.Client.PostAsync("/api/v1/secrets/exchange", null);

        await AssertUnauthorizedProblem(response);
        Assert.Contains("Bearer", response.Headers.WwwAuthenticate.ToString());
    }

    [Fact]
    public async Task Invalid_secret_name_is_a_problem_naming_the_field_and_does_not_spend_the_token()
    {
        var token = await _broker.MintAsync(Guid.NewGuid());

        using var bad = await _broker.ExchangeAsync(token, "NOT-A-NAME");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("secrets", (await bad.Content.ReadFromJsonAsync<ProblemDetails>())!.Detail);

        await ExchangeOkAsync(token, "NPM_TOKEN");
    }

    [Fact]
    public async Task Every_refusal_and_the_grant_are_audited_without_values()
    {
        var jobId = Guid.NewGuid();
        var token = await _broker.MintAsync(jobId, gitRef: "refs/heads/feature/x");
        await ExchangeOkAsync(token, "DEPLOY_KEY", "NPM_TOKEN");
        using var replay = await _broker.ExchangeAsync(token);

        var audit = await AuditAsync(jobId);

        Assert.Contains(audit, e => e.Action == "token.issued");
        Assert.Contains(audit, e => e.Action == "exchange.denied" && e.Secret == "DEPLOY_KEY" && e.Detail == "ref-not-allowed");
        Assert.Contains(audit, e => e.Action == "exchange.granted" && e.Detail == "secrets=[NPM_TOKEN]");
        Assert.Contains(audit, e => e.Action == "exchange.replayed");
        Assert.DoesNotContain(audit, e => (e.Detail ?? "").Contains("npm-t0ken-value", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Without_redis_the_marks_stay_in_process()
    {
        // The embedded default: no Redis setting, single-use still holds.
        await using var broker = await BrokerTestApp.StartAsync(withRedis: false);
        await broker.PutSecretAsync("LOCAL", "local-value", ["acme/*"], ["**"]);
        var token = await broker.MintAsync(Guid.NewGuid());

        using var first = await broker.ExchangeAsync(token, "LOCAL");
        using var second = await broker.ExchangeAsync(token, "LOCAL");

        Assert.Null(broker.App.Services.GetService(typeof(IConnectionMultiplexer)));
        Assert.IsType<InProcessTokenReplayGuard>(broker.Service<ITokenReplayGuard>());
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
    }

    private static string ForgeWith(SecurityKey key, string algorithm, string issuer, string audience) =>
        new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Audience = audience,
            Expires = DateTime.UtcNow.AddMinutes(10),
            SigningCredentials = new SigningCredentials(key, algorithm),
            Claims = new Dictionary<string, object>
            {
                ["jti"] = Guid.NewGuid().ToString("N"),
                [JobTokenClaims.JobIdClaim] = Guid.NewGuid().ToString(),
                [JobTokenClaims.RepositoryClaim] = "acme/widgets",
                [JobTokenClaims.RefClaim] = "refs/heads/main",
            },
        });

    private async Task<ExchangeBody> ExchangeOkAsync(string token, params string[] secrets)
    {
        using var response = await _broker.ExchangeAsync(token, secrets);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<ExchangeBody>())!;
    }

    private async Task<List<AuditLine>> AuditAsync(Guid jobId)
    {
        using var response = await _broker.Client.SendAsync(_broker.Admin(HttpMethod.Get, $"/api/v1/admin/audit?jobId={jobId}"));
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<List<AuditLine>>())!;
    }

    internal static async Task AssertUnauthorizedProblem(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<ProblemDetails>();
        Assert.Equal(401, problem!.Status);
        Assert.False(string.IsNullOrEmpty(problem.Detail));
    }

    private sealed record ExchangeBody(Guid JobId, Dictionary<string, string> Secrets, Dictionary<string, string>? Denied);

    internal sealed record AuditLine(long Id, string Actor, string Action, string? Secret, Guid? JobId, string? Ref, string? TokenId, string? Detail, int? Attempt = null);
}
