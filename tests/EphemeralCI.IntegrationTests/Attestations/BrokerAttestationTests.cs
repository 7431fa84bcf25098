using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using EphemeralCI.Attestations;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.IntegrationTests.SecretsBroker;
using EphemeralCI.IntegrationTests.Cli;
using MassTransit;
using Xunit;

namespace EphemeralCI.IntegrationTests.Attestations;

/// <summary>
/// The secrets broker signs a job's statement with its job-token key ring (real broker, Postgres,
/// Redis): the envelope verifies with its published JWKS — in EphemeralCI's verifier, in `eci jobs verify`,
/// and in an independent Python implementation (cryptography) — carries the secrets issued to the job by
/// name and version (never the value), and any tampering fails all of them.
/// </summary>
public sealed class BrokerAttestationTests : IAsyncLifetime
{
    private const string AttestationToken = "attestation-token-for-tests-0123456789";
    private const string Commit = "0123456789abcdef0123456789abcdef01234567";
    private const string SecretValue = "npm-secret-value-never-attested";
    private BrokerTestApp _broker = null!;
    private readonly string _dir = Directory.CreateTempSubdirectory("eci-attest-").FullName;

    public async Task InitializeAsync() =>
        _broker = await BrokerTestApp.StartAsync(extra: new Dictionary<string, string?> { ["SecretsBroker:AttestationToken"] = AttestationToken });

    public async Task DisposeAsync()
    {
        await _broker.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private static JsonObject Statement(Guid jobId, string subject = "acme/widgets") =>
        JsonSerializer.SerializeToNode(JobStatement.For(new JobPredicate(
            new BuildDefinition(AttestationFormat.BuildType, new ExternalParameters("acme/widgets", "refs/heads/main", Commit, "default", null, "build"),
                new InternalParameters(new Submitter("api-key", "api-key:1", "1"))),
            new RunDetails(new Builder(AttestationFormat.DefaultBuilderId, new Dictionary<string, string> { ["ephemeralci"] = "test" }),
                new BuildMetadata(jobId.ToString(), DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow)),
            new JobRunner($"runner-{jobId:N}", "local", new RunnerTemplateRef("default", "sha256:" + new string('a', 64))),
            new JobLifecycle(DateTimeOffset.UtcNow.AddMinutes(-2), DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow, DateTimeOffset.UtcNow),
            new TeardownReport(true, 1, [new TeardownCheck("processes", true, "/proc")]),
            null,
            new JobCaches([], []),
            new JobOutcome("succeeded", 0, null))) with { Subject = [new ResourceDescriptor(subject, new Dictionary<string, string> { ["gitCommit"] = Commit })] },
            AttestationFormat.Json)!.AsObject();

    private async Task<HttpResponseMessage> SignAsync(Guid jobId, JsonObject statement, string? token = AttestationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/internal/v1/attestations")
        {
            Content = JsonContent.Create(new { jobId, statement }),
        };
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await _broker.Client.SendAsync(request);
    }

    /// <summary>A job that received a secret and ended (its token revoked), then its statement signed.</summary>
    private async Task<(DsseEnvelope Envelope, string Jwks)> AttestedJobAsync()
    {
        var jobId = Guid.NewGuid();
        await _broker.PutSecretAsync("NPM_TOKEN", SecretValue, ["acme/*"], ["refs/heads/main"]);
        await _broker.PutSecretAsync("NPM_TOKEN", SecretValue + "-2", ["acme/*"], ["refs/heads/main"]);
        using (var exchanged = await _broker.ExchangeAsync(await _broker.MintAsync(jobId), "NPM_TOKEN")) exchanged.EnsureSuccessStatusCode();
        await _broker.Service<IBus>().Publish(new RunnerFinished(jobId, $"runner-{jobId:N}", RunnerOutcome.Exited, 0, null, DateTimeOffset.UtcNow));
        await WaitForRevocationAuditAsync(jobId);

        using var response = await SignAsync(jobId, Statement(jobId));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        var envelope = (await response.Content.ReadFromJsonAsync<DsseEnvelope>())!;
        return (envelope, await _broker.Client.GetStringAsync("/.well-known/jwks.json"));
    }

    private async Task WaitForRevocationAuditAsync(Guid jobId)
    {
        for (var i = 0; i < 100; i++)
        {
            using var request = _broker.Admin(HttpMethod.Get, $"/api/v1/admin/audit?jobId={jobId}&action=token.revoked");
            using var response = await _broker.Client.SendAsync(request);
            if ((await response.Content.ReadFromJsonAsync<JsonElement>()).GetArrayLength() > 0) return;
            await Task.Delay(50);
        }
        Assert.Fail("the broker never recorded the job's token as revoked");
    }

    [Fact]
    public async Task The_envelope_verifies_with_the_published_JWKS_and_names_the_secrets_issued_never_their_values()
    {
        var (envelope, jwksJson) = await AttestedJobAsync();

        var result = AttestationVerifier.Verify(envelope, JsonWebKeySet.Parse(jwksJson));
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        var secret = Assert.Single(result.Statement!.Predicate.Secrets!);
        Assert.Equal("NPM_TOKEN", secret.Name);
        Assert.Equal(2, secret.Version); // the version current at the exchange
        Assert.NotNull(secret.RevokedAt);
        var payload = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(envelope.Payload));
        Assert.DoesNotContain(SecretValue, payload);
        // The key that signs job tokens signs this.
        Assert.Contains(JsonWebKeySet.Parse(jwksJson).Keys, k => k.Kid == result.KeyId);
    }

    [Fact]
    public async Task A_second_implementation_in_Python_accepts_it_and_refuses_a_changed_byte_or_another_key()
    {
        var (envelope, jwksJson) = await AttestedJobAsync();
        var jwks = Write("jwks.json", jwksJson);

        var ok = await PythonVerifyAsync(Write("envelope.json", JsonSerializer.Serialize(envelope)), jwks);
        Assert.True(ok.Code == 0, ok.Output);
        Assert.Contains("OK " + envelope.Signatures[0].KeyId + " " + AttestationFormat.PredicateType + " acme/widgets " + Commit, ok.Output);

        var payload = Convert.FromBase64String(envelope.Payload);
        payload[payload.Length / 2] ^= 0x20;
        var tampered = await PythonVerifyAsync(Write("tampered.json", JsonSerializer.Serialize(envelope with { Payload = Convert.ToBase64String(payload) })), jwks);
        Assert.Equal(1, tampered.Code);

        using var other = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var p = other.ExportParameters(false);
        var swapped = Write("swapped.json", JsonSerializer.Serialize(new { keys = new[] { new { kty = "EC", crv = "P-256", kid = envelope.Signatures[0].KeyId,
            x = System.Buffers.Text.Base64Url.EncodeToString(p.Q.X), y = System.Buffers.Text.Base64Url.EncodeToString(p.Q.Y) } } }));
        Assert.Equal(1, (await PythonVerifyAsync(Write("envelope2.json", JsonSerializer.Serialize(envelope)), swapped)).Code);
    }

    [Fact]
    public async Task Eci_verifies_it_offline_and_fails_with_6_on_a_changed_payload_or_key()
    {
        var (envelope, jwksJson) = await AttestedJobAsync();
        using var cli = new CliHarness(handler: null);
        var jwks = cli.WriteFile("jwks.json", jwksJson);

        var valid = await cli.RunAsync("eci_unused", "jobs", "verify", "--file", cli.WriteFile("envelope.json", JsonSerializer.Serialize(envelope)), "--jwks", jwks);
        Assert.True(valid.ExitCode == 0, valid.ToString());
        Assert.Contains("valid attestation of job", valid.StdOut);
        Assert.Contains("NPM_TOKEN v2", valid.StdOut);
        Assert.Contains("verified gone", valid.StdOut);

        var payload = Convert.FromBase64String(envelope.Payload);
        payload[10] ^= 0x01;
        var tampered = await cli.RunAsync("eci_unused", "jobs", "verify", "--json",
            "--file", cli.WriteFile("tampered.json", JsonSerializer.Serialize(envelope with { Payload = Convert.ToBase64String(payload) })), "--jwks", jwks);
        Assert.Equal(6, tampered.ExitCode);
        Assert.False(JsonDocument.Parse(tampered.StdOut).RootElement.GetProperty("valid").GetBoolean());

        var wrongCommit = await cli.RunAsync("eci_unused", "jobs", "verify", "--file", cli.WriteFile("e.json", JsonSerializer.Serialize(envelope)), "--jwks", jwks,
            "--commit", new string('f', 40));
        Assert.Equal(6, wrongCommit.ExitCode);

        // The key swapped: a JWKS whose keys keep their ids but are other P-256 keys.
        var swapped = System.Text.Json.Nodes.JsonNode.Parse(jwksJson)!;
        foreach (var key in swapped["keys"]!.AsArray())
        {
            var other = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256).ExportParameters(false);
            key!["x"] = Microsoft.IdentityModel.Tokens.Base64UrlEncoder.Encode(other.Q.X);
            key["y"] = Microsoft.IdentityModel.Tokens.Base64UrlEncoder.Encode(other.Q.Y);
        }
        var otherKey = await cli.RunAsync("eci_unused", "jobs", "verify", "--file", cli.WriteFile("k.json", JsonSerializer.Serialize(envelope)),
            "--jwks", cli.WriteFile("swapped.json", swapped.ToJsonString()));
        Assert.Equal(6, otherKey.ExitCode);
    }

    [Fact]
    public async Task Only_the_intake_with_its_token_may_have_statements_signed_and_only_job_statements_about_the_job_named()
    {
        var jobId = Guid.NewGuid();
        using (var anonymous = await SignAsync(jobId, Statement(jobId), token: null)) Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        using (var admin = await SignAsync(jobId, Statement(jobId), token: BrokerTestApp.AdminToken)) Assert.Equal(HttpStatusCode.Unauthorized, admin.StatusCode);

        var other = Statement(jobId);
        other["predicateType"] = "https://slsa.dev/provenance/v1";
        using (var foreign = await SignAsync(jobId, other))
        {
            Assert.Equal(HttpStatusCode.BadRequest, foreign.StatusCode);
            Assert.Contains("statement", await foreign.Content.ReadAsStringAsync());
        }
        using (var elsewhere = await SignAsync(Guid.NewGuid(), Statement(jobId))) Assert.Equal(HttpStatusCode.BadRequest, elsewhere.StatusCode);
    }

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static async Task<(int Code, string Output)> PythonVerifyAsync(string envelope, string jwks)
    {
        var psi = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Attestations", "verify_dsse.py"));
        psi.ArgumentList.Add(envelope);
        psi.ArgumentList.Add(jwks);
        using var process = Process.Start(psi)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, output + error);
    }
}
