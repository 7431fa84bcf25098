using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using EphemeralCI.Attestations;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Auth;
using EphemeralCI.IntegrationTests.SecretsBroker;
using EphemeralCI.IntegrationTests.Intake;
using MassTransit;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.IntegrationTests.Attestations;

/// <summary>The real intake host with the real secrets broker over HTTP as its signer (the distributed topology).</summary>
public sealed class AttestingIntakeFactory : IntakeFactory
{
    public const string AttestationToken = "attestation-token-for-intake-tests-0123456789";
    internal BrokerTestApp Broker { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        Broker = await BrokerTestApp.StartAsync(overKestrel: true,
            extra: new Dictionary<string, string?> { ["SecretsBroker:AttestationToken"] = AttestationToken });
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await Broker.DisposeAsync();
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.UseSetting("Attestations:SignerUrl", Broker.Client.BaseAddress!.ToString());
        builder.UseSetting("Attestations:SignerToken", AttestationToken);
        builder.UseSetting("Attestations:SweepInterval", "00:00:01");
    }
}

/// <summary>
/// A job over whose runner was destroyed and checked gets its attestation, signed by the broker, served
/// by GET /api/v1/jobs/{id}/attestation with the job's own visibility; a teardown that left something is
/// on the timeline as runner.leftover and makes the attestation fail verification.
/// </summary>
public sealed class IntakeAttestationTests(AttestingIntakeFactory app) : IClassFixture<AttestingIntakeFactory>
{
    private static readonly TeardownReport Clean = new(true, 1, [new TeardownCheck("processes", true, "/proc"), new TeardownCheck("cgroup", true, "/sys/fs/cgroup/x")]);

    /// <summary>Published and consumed, in order, as the provisioner's messages normally arrive.</summary>

    private async Task<Guid> RunToTheEndAsync(HttpClient ci, TeardownReport? teardown)
    {
        var id = await Jobs.SubmitAsync(ci);
        var now = DateTimeOffset.UtcNow;
        await app.DeliverAsync(new RunnerStarted(id, "r-1", "local", now, "sha256:" + new string('a', 64)));
        await app.DeliverAsync(new RunnerFinished(id, "r-1", RunnerOutcome.Exited, 3, null, now.AddSeconds(1)));
        await app.DeliverAsync(new RunnerDestroyed(id, "r-1", now.AddSeconds(2), teardown));
        return id;
    }

    private static async Task<DsseEnvelope> AttestationAsync(HttpClient ci, Guid id)
    {
        DsseEnvelope? envelope = null;
        await IntakeFactory.EventuallyAsync(async () =>
        {
            using var response = await ci.GetAsync($"/api/v1/jobs/{id}/attestation");
            if (response.StatusCode != HttpStatusCode.OK) return false;
            envelope = await response.Content.ReadFromJsonAsync<DsseEnvelope>();
            return true;
        }, "the job's attestation");
        return envelope!;
    }

    private async Task<JsonWebKeySet> JwksAsync() => JsonWebKeySet.Parse(await app.Broker.Client.GetStringAsync("/.well-known/jwks.json"));

    [Fact]
    public async Task A_finished_job_gets_an_attestation_the_brokers_JWKS_verifies()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(ci);
        using (var early = await ci.GetAsync($"/api/v1/jobs/{id}/attestation"))
        {
            Assert.Equal(HttpStatusCode.NotFound, early.StatusCode);
            Assert.Contains("no attestation yet", await early.Content.ReadAsStringAsync());
        }

        id = await RunToTheEndAsync(ci, Clean);
        var envelope = await AttestationAsync(ci, id);
        var result = AttestationVerifier.Verify(envelope, await JwksAsync(), new ExpectedSubject(id, "acme/widgets", Jobs.Sha));

        Assert.True(result.Valid, string.Join("; ", result.Problems));
        var p = result.Statement!.Predicate;
        Assert.Equal("failed", p.Outcome.Status);
        Assert.Equal(3, p.Outcome.ExitCode);
        Assert.Equal(("r-1", "local"), (p.Runner.Id, p.Runner.Backend));
        Assert.Equal(2, p.Teardown!.Checks.Count);
        Assert.NotNull(p.Lifecycle.DestroyedAt);
        Assert.Empty(p.Secrets!); // the broker issued this job nothing
        var types = (await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}/events")).GetProperty("events").EnumerateArray().Select(e => e.GetProperty("type").GetString()).ToList();
        Assert.Equal(1, types.Count(t => t == "job.attested"));
    }

    [Fact]
    public async Task A_RunnerDestroyed_handled_before_RunnerStarted_still_names_the_runner_and_its_template()
    {
        // The provisioner's messages are consumed concurrently: the last one may be handled first.
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(ci);
        var now = DateTimeOffset.UtcNow;
        var hash = "sha256:" + new string('b', 64);
        await app.DeliverAsync(new RunnerFinished(id, "r-9", RunnerOutcome.Exited, 0, null, now.AddSeconds(1)));
        await app.DeliverAsync(new RunnerDestroyed(id, "r-9", now.AddSeconds(2), Clean, "local", hash));

        var result = AttestationVerifier.Verify(await AttestationAsync(ci, id), await JwksAsync(), new ExpectedSubject(id, "acme/widgets", Jobs.Sha));
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        var runner = result.Statement!.Predicate.Runner;
        Assert.Equal(("r-9", "local", hash), (runner.Id, runner.Backend, runner.Template.Digest));
    }

    [Fact]
    public async Task The_attestation_is_seen_only_by_whoever_may_see_the_job()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await RunToTheEndAsync(ci, Clean);
        await AttestationAsync(ci, id);

        using var other = await app.ClientWithBindingsAsync([ApiKeyScopes.Read], ["acme/other"]);
        using var response = await other.GetAsync($"/api/v1/jobs/{id}/attestation");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        using var noScope = await app.ClientWithBindingsAsync([ApiKeyScopes.Submit], ["**"]);
        using var refused = await noScope.GetAsync($"/api/v1/jobs/{id}/attestation");
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
    }

    [Fact]
    public async Task A_leftover_is_on_the_timeline_and_the_attestation_says_the_check_failed()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var left = new TeardownReport(false, 3,
            [new TeardownCheck("processes", false, "/proc", "pid 4242 (sleep, its id in the environment)"), new TeardownCheck("cgroup", true, "/x")],
            ["attempt 1: processes: pid 4242", "attempt 2: processes: pid 4242", "attempt 3: processes: pid 4242"]);
        var id = await RunToTheEndAsync(ci, left);

        var envelope = await AttestationAsync(ci, id);
        var result = AttestationVerifier.Verify(envelope, await JwksAsync());
        Assert.False(result.Valid);
        Assert.Contains(result.Problems, p => p.Contains("teardown check failed") && p.Contains("pid 4242"));

        var events = (await ci.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}/events")).GetProperty("events").EnumerateArray().ToList();
        var leftover = Assert.Single(events, e => e.GetProperty("type").GetString() == "runner.leftover");
        Assert.Contains("pid 4242", leftover.GetProperty("message").GetString());
        Assert.Equal(3, leftover.GetProperty("data").GetProperty("attempts").GetInt32());
        Assert.Contains("teardown check FAILED", events.Single(e => e.GetProperty("type").GetString() == "runner.destroyed").GetProperty("message").GetString());
    }

    [Fact]
    public async Task A_runner_destroyed_without_a_check_gets_no_attestation()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var unchecked_ = await RunToTheEndAsync(ci, teardown: null);
        var checked_ = await RunToTheEndAsync(ci, Clean);
        await AttestationAsync(ci, checked_);
        await Task.Delay(1500); // more than a sweep

        using var response = await ci.GetAsync($"/api/v1/jobs/{unchecked_}/attestation");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }
}
