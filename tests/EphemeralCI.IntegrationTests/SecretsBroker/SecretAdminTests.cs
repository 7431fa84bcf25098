using System.Text.Json.Nodes;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using EphemeralCI.JobTokens;
using EphemeralCI.SecretsBroker.Identity;
using EphemeralCI.SecretsBroker.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Mvc;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Npgsql;
using Xunit;

namespace EphemeralCI.IntegrationTests.SecretsBroker;

/// <summary>The admin API, encryption at rest, key-encryption-key rotation, the audit log and job identity (OIDC), on real Postgres.</summary>
public sealed class SecretAdminTests : IAsyncLifetime
{
    private const string Plaintext = "hunter2-Plaintext-Marker-7f3a9c";
    private BrokerTestApp _broker = null!;

    public async Task InitializeAsync() => _broker = await BrokerTestApp.StartAsync();
    public async Task DisposeAsync() => await _broker.DisposeAsync();

    [Fact]
    public async Task Values_are_write_only_and_never_in_the_database_logs_or_any_answer()
    {
        var answers = new StringBuilder();
        async Task<HttpResponseMessage> Send(HttpRequestMessage request)
        {
            var response = await _broker.Client.SendAsync(request);
            answers.AppendLine(await response.Content.ReadAsStringAsync());
            return response;
        }

        using (var created = await Send(_broker.Admin(HttpMethod.Put, "/api/v1/admin/secrets/API_KEY",
            new { value = Plaintext, repositories = new[] { "acme/*" }, refs = new[] { "refs/heads/main" } })))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }
        using (var updated = await Send(_broker.Admin(HttpMethod.Put, "/api/v1/admin/secrets/API_KEY",
            new { value = Plaintext + "-v2", repositories = new[] { "acme/*" }, refs = new[] { "refs/heads/main", "refs/tags/v*" } })))
        {
            Assert.Equal(HttpStatusCode.OK, updated.StatusCode);
        }
        using var list = await Send(_broker.Admin(HttpMethod.Get, "/api/v1/admin/secrets"));
        using var one = await Send(_broker.Admin(HttpMethod.Get, "/api/v1/admin/secrets/API_KEY"));
        using var audit = await Send(_broker.Admin(HttpMethod.Get, "/api/v1/admin/audit"));
        using var export = await Send(_broker.Admin(HttpMethod.Get, "/api/v1/admin/audit/export"));
        var token = await _broker.MintAsync(Guid.NewGuid(), repository: "acme/x");
        using var exchange = await _broker.ExchangeAsync(token, "API_KEY");
        Assert.Contains(Plaintext + "-v2", await exchange.Content.ReadAsStringAsync()); // the one answer that must carry it

        var metadata = await one.Content.ReadFromJsonAsync<Metadata>();
        Assert.Equal(2, metadata!.CurrentVersion);
        Assert.Equal([1, 2], metadata.Versions!.Select(v => v.Version));
        Assert.Equal(["refs/heads/main", "refs/tags/v*"], metadata.Refs);
        Assert.DoesNotContain(Plaintext, answers.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(_broker.Logs.Lines, l => l.Contains(Plaintext, StringComparison.Ordinal));
        await AssertNotInDatabaseAsync(Plaintext);
        await AssertNotInDatabaseAsync(Plaintext + "-v2");
    }

    [Fact]
    public async Task Admin_api_requires_the_admin_token()
    {
        using var none = await _broker.Client.GetAsync("/api/v1/admin/secrets");
        using var wrong = await _broker.Client.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/api/v1/admin/secrets")
        {
            Headers = { Authorization = new("Bearer", BrokerTestApp.ProvisionerToken) },
        });

        await ExchangeApiTests.AssertUnauthorizedProblem(none);
        await ExchangeApiTests.AssertUnauthorizedProblem(wrong);
    }

    [Fact]
    public async Task Bad_input_is_a_validation_problem_naming_each_field()
    {
        using var response = await _broker.Client.SendAsync(_broker.Admin(HttpMethod.Put, "/api/v1/admin/secrets/bad-name",
            new { value = "", repositories = Array.Empty<string>(), refs = new[] { " " } }));
        using var noValue = await _broker.Client.SendAsync(_broker.Admin(HttpMethod.Put, "/api/v1/admin/secrets/NEW_ONE",
            new { repositories = new[] { "a/b" }, refs = new[] { "refs/heads/main" } }));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<ValidationProblemDetails>();
        Assert.Equal(["name", "value", "repositories", "refs"], problem!.Errors.Keys);
        Assert.Equal(HttpStatusCode.BadRequest, noValue.StatusCode);
        Assert.Contains("value", (await noValue.Content.ReadFromJsonAsync<ValidationProblemDetails>())!.Errors.Keys);
    }

    [Fact]
    public async Task Delete_removes_every_version_and_is_audited()
    {
        await _broker.PutSecretAsync("GONE", Plaintext, ["a/*"], ["**"]);

        using var deleted = await _broker.Client.SendAsync(_broker.Admin(HttpMethod.Delete, "/api/v1/admin/secrets/GONE"));
        using var again = await _broker.Client.SendAsync(_broker.Admin(HttpMethod.Delete, "/api/v1/admin/secrets/GONE"));

        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        Assert.Equal(0L, await ScalarAsync<long>("SELECT count(*) FROM secret_versions"));
        Assert.Equal(1L, await ScalarAsync<long>("SELECT count(*) FROM audit_entries WHERE action = 'secret.deleted' AND secret_name = 'GONE'"));

        // The newest lines first (the web UI's Secrets page in a split deployment): the delete, then the policy the put set.
        using var recent = await _broker.Client.SendAsync(_broker.Admin(HttpMethod.Get, "/api/v1/admin/audit/recent?limit=2"));
        using var tooMany = await _broker.Client.SendAsync(_broker.Admin(HttpMethod.Get, "/api/v1/admin/audit/recent?limit=1001"));
        var lines = (await recent.Content.ReadFromJsonAsync<JsonArray>())!;
        Assert.Equal(["secret.deleted", "policy.changed"], lines.Select(l => l!["action"]!.GetValue<string>()));
        Assert.Equal(HttpStatusCode.BadRequest, tooMany.StatusCode);
        Assert.Contains("limit", (await tooMany.Content.ReadFromJsonAsync<ValidationProblemDetails>())!.Errors.Keys);
    }

    [Fact]
    public async Task Audit_log_rejects_update_delete_and_truncate_in_the_database()
    {
        await _broker.PutSecretAsync("AUDITED", Plaintext, ["a/*"], ["**"]);

        foreach (var sql in new[] { "UPDATE audit_entries SET actor = 'mallory'", "DELETE FROM audit_entries", "TRUNCATE audit_entries" })
        {
            var e = await Assert.ThrowsAsync<PostgresException>(() => ScalarAsync<object?>(sql));
            Assert.Contains("append-only", e.MessageText);
        }
        Assert.True(await ScalarAsync<long>("SELECT count(*) FROM audit_entries") >= 2);
    }

    [Fact]
    public async Task Audit_export_is_json_lines()
    {
        await _broker.PutSecretAsync("EXPORTED", Plaintext, ["a/*"], ["**"]);

        using var response = await _broker.Client.SendAsync(_broker.Admin(HttpMethod.Get, "/api/v1/admin/audit/export?secret=EXPORTED"));

        Assert.Equal("application/x-ndjson", response.Content.Headers.ContentType?.MediaType);
        var lines = (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var actions = lines.Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("action").GetString()).ToList();
        Assert.Equal(["secret.created", "policy.changed"], actions);
    }

    [Fact]
    public async Task Key_encryption_key_rotates_without_downtime()
    {
        var k1 = BrokerTestApp.NewKek();
        var k2 = BrokerTestApp.NewKek();
        var db = await EphemeralCI.IntegrationTests.Infrastructure.RealServices.CreateDatabaseAsync("secrets"); // its own keys, its own database
        await using (var old = await BrokerTestApp.StartAsync(db, new Dictionary<string, string> { ["k1"] = k1 }))
        {
            await old.PutSecretAsync("ROTATED", Plaintext, ["acme/*"], ["**"]);
        }

        // Step 1: k2 active, k1 still known: old values still readable, new writes under k2.
        await using (var both = await BrokerTestApp.StartAsync(db, new Dictionary<string, string> { ["k1"] = k1, ["k2"] = k2 }, activeKeyId: "k2"))
        {
            Assert.Equal(Plaintext, await ExchangeOneAsync(both, "ROTATED"));
            using var rewrap = await both.Client.SendAsync(both.Admin(HttpMethod.Post, "/api/v1/admin/keys/rewrap"));
            var result = await rewrap.Content.ReadFromJsonAsync<Rewrap>();
            Assert.Equal(new Rewrap("k2", 1, 1), result); // the secret's version and the token-signing key
        }
        Assert.Equal(0L, await ScalarAsync<long>("SELECT count(*) FROM secret_versions WHERE key_id <> 'k2'"));

        // Step 2: k1 removed from configuration: everything still opens.
        await using var only = await BrokerTestApp.StartAsync(db, new Dictionary<string, string> { ["k2"] = k2 });
        Assert.Equal(Plaintext, await ExchangeOneAsync(only, "ROTATED"));
    }

    [Fact]
    public async Task Discovery_and_jwks_let_an_outside_party_verify_a_job_token()
    {
        var jobId = Guid.NewGuid();
        var token = await _broker.MintAsync(jobId, repository: "acme/widgets", gitRef: "refs/tags/v2.0.0");

        var discovery = await _broker.Client.GetFromJsonAsync<Discovery>("/.well-known/openid-configuration");
        var jwks = new JsonWebKeySet(await _broker.Client.GetStringAsync(new Uri(discovery!.jwks_uri).PathAndQuery));
        var result = await new JsonWebTokenHandler().ValidateTokenAsync(token, new TokenValidationParameters
        {
            ValidIssuer = discovery.issuer,
            ValidAudience = "ephemeralci-runner",
            IssuerSigningKeys = jwks.GetSigningKeys(),
            ValidAlgorithms = ["ES256"],
        });

        Assert.True(result.IsValid, result.Exception?.Message);
        var jwt = (JsonWebToken)result.SecurityToken;
        Assert.Equal("ES256", jwt.Alg);
        Assert.Contains(jwks.Keys, k => k.Kid == jwt.Kid);
        Assert.Equal("repo:acme/widgets:ref:refs/tags/v2.0.0", jwt.Subject);
        Assert.Equal(jobId.ToString(), jwt.GetClaim(JobTokenClaims.JobIdClaim).Value);
        Assert.Equal("0123456789abcdef0123456789abcdef01234567", jwt.GetClaim("sha").Value);
        Assert.Equal("default", jwt.GetClaim("runner_template").Value);
        Assert.False(string.IsNullOrEmpty(jwt.Id));
        Assert.All(jwks.Keys, k => Assert.True(string.IsNullOrEmpty(k.D), "a private key part is published"));
    }

    [Fact]
    public async Task Signing_key_rotates_and_tokens_signed_before_keep_working_until_they_expire()
    {
        var clock = new ShiftedClock();
        await using var broker = await BrokerTestApp.StartAsync(clock: clock, extra: new Dictionary<string, string?>
        {
            ["SecretsBroker:SigningKeyRotation"] = "00:10:00",
            ["SecretsBroker:SigningKeyOverlap"] = "01:00:00",
        });
        await broker.PutSecretAsync("ROT", Plaintext, ["acme/*"], ["**"]);
        var before = await broker.MintAsync(Guid.NewGuid(), repository: "acme/a", deadline: DateTimeOffset.UtcNow.AddMinutes(40));

        clock.Offset = TimeSpan.FromMinutes(11); // the first key has signed for longer than its rotation period
        await broker.Service<SigningKeyRing>().RotateIfDueAsync(default);
        var after = await broker.MintAsync(Guid.NewGuid(), repository: "acme/a", deadline: DateTimeOffset.UtcNow.AddMinutes(40));
        var jwks = new JsonWebKeySet(await broker.Client.GetStringAsync("/.well-known/jwks.json"));

        var oldKid = new JsonWebToken(before).Kid;
        var newKid = new JsonWebToken(after).Kid;
        Assert.NotEqual(oldKid, newKid);
        Assert.Equal([newKid, oldKid], jwks.Keys.Select(k => k.Kid)); // newest first, the old one still published
        using var old = await broker.ExchangeAsync(before, "ROT");
        Assert.Equal(HttpStatusCode.OK, old.StatusCode);

        clock.Offset = TimeSpan.FromMinutes(11 + 10 + 61); // past the old key's overlap
        var later = new JsonWebKeySet(await broker.Client.GetStringAsync("/.well-known/jwks.json"));
        Assert.DoesNotContain(later.Keys, k => k.Kid == oldKid);

        // Retired: it can sign nothing more (its private half is gone), yet what it signed stays checkable.
        await broker.Service<SigningKeyRing>().RotateIfDueAsync(default);
        await using (var scope = broker.Service<IServiceScopeFactory>().CreateAsyncScope())
        {
            var row = await scope.ServiceProvider.GetRequiredService<SecretsDbContext>().SigningKeys.SingleAsync(k => k.Kid == oldKid);
            Assert.Empty(row.PrivateKeyCiphertext);
            Assert.Empty(row.WrappedDataKey);
        }
        var attestationKeys = new JsonWebKeySet(await broker.Client.GetStringAsync("/.well-known/attestation-keys.json"));
        // (the second key has also stopped signing by now, so a third signs)
        Assert.Equal([newKid, oldKid], attestationKeys.Keys.Select(k => k.Kid).Skip(1));
        Assert.All(attestationKeys.Keys, k => Assert.True(string.IsNullOrEmpty(k.D), "a private key part is published"));
    }

    [Fact]
    public async Task An_operator_rotation_signs_with_a_new_key_at_once_destroys_the_old_private_half_and_is_audited()
    {
        await _broker.PutSecretAsync("ROT2", Plaintext, ["acme/*"], ["**"]);
        var before = await _broker.MintAsync(Guid.NewGuid(), repository: "acme/a", deadline: DateTimeOffset.UtcNow.AddMinutes(40));
        using (var refused = await _broker.Client.PostAsync("/api/v1/admin/signing-keys/rotate", null))
        {
            await ExchangeApiTests.AssertUnauthorizedProblem(refused);
        }

        using var response = await _broker.Client.SendAsync(_broker.Admin(HttpMethod.Post, "/api/v1/admin/signing-keys/rotate"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var rotation = (await response.Content.ReadFromJsonAsync<SigningKeyRotation>())!;
        var oldKid = new JsonWebToken(before).Kid;
        Assert.Equal(oldKid, rotation.PreviousKid);
        Assert.Equal(rotation.Kid, new JsonWebToken(await _broker.MintAsync(Guid.NewGuid(), repository: "acme/a", deadline: DateTimeOffset.UtcNow.AddMinutes(40))).Kid);

        // The old key's tokens still work for the overlap; the old key can sign nothing more.
        using var old = await _broker.ExchangeAsync(before, "ROT2");
        Assert.Equal(HttpStatusCode.OK, old.StatusCode);
        var jwks = new JsonWebKeySet(await _broker.Client.GetStringAsync("/.well-known/jwks.json"));
        Assert.Equal([rotation.Kid, oldKid], jwks.Keys.Select(k => k.Kid).Take(2));
        await using var scope = _broker.Service<IServiceScopeFactory>().CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SecretsDbContext>();
        var row = await db.SigningKeys.SingleAsync(k => k.Kid == oldKid);
        Assert.Empty(row.PrivateKeyCiphertext);
        Assert.Contains(await db.AuditEntries.Where(a => a.Action == "signing-key.rotated").Select(a => a.Detail).ToListAsync(), d => d == $"kid={oldKid}");
    }

    [Fact]
    public async Task Minting_requires_the_provisioner_token_and_a_sane_request()
    {
        using var noAuth = await _broker.Client.PostAsJsonAsync("/internal/v1/job-tokens",
            new JobTokenRequest(Guid.NewGuid(), "a/b", "refs/heads/main", DateTimeOffset.UtcNow.AddMinutes(5)));
        using var bad = await _broker.Client.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/internal/v1/job-tokens")
        {
            Headers = { Authorization = new("Bearer", BrokerTestApp.ProvisionerToken) },
            Content = JsonContent.Create(new JobTokenRequest(Guid.Empty, "", "refs/heads/main", DateTimeOffset.UtcNow.AddDays(30))),
        });

        await ExchangeApiTests.AssertUnauthorizedProblem(noAuth);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal(["jobId", "repository", "deadline"], (await bad.Content.ReadFromJsonAsync<ValidationProblemDetails>())!.Errors.Keys);
    }

    private static async Task<string> ExchangeOneAsync(BrokerTestApp broker, string name)
    {
        using var response = await broker.ExchangeAsync(await broker.MintAsync(Guid.NewGuid(), repository: "acme/x"), name);
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<Exchange>();
        return body!.Secrets[name];
    }

    /// <summary>Scans every row of every table of the broker's schema, as text (bytea as hex), for the value in any plain encoding.</summary>
    private async Task AssertNotInDatabaseAsync(string value)
    {
        var forms = new[]
        {
            value,
            Convert.ToHexString(Encoding.UTF8.GetBytes(value)).ToLowerInvariant(),
            Convert.ToBase64String(Encoding.UTF8.GetBytes(value)),
        };
        await using var conn = new NpgsqlConnection(_broker.ConnectionString);
        await conn.OpenAsync();
        var tables = new List<string>();
        await using (var cmd = new NpgsqlCommand("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", conn))
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync()) tables.Add(reader.GetString(0));
        }
        Assert.Contains("secret_versions", tables);
        foreach (var table in tables)
        {
            await using var cmd = new NpgsqlCommand($"SELECT t::text FROM \"{table}\" t", conn);
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                var row = reader.GetString(0);
                foreach (var form in forms) Assert.DoesNotContain(form, row, StringComparison.OrdinalIgnoreCase);
            }
        }
    }

    private async Task<T> ScalarAsync<T>(string sql)
    {
        await using var conn = new NpgsqlConnection(_broker.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    private sealed record VersionInfo(int Version, string KeyId);
    private sealed record Metadata(string Name, int CurrentVersion, List<string> Refs, List<VersionInfo>? Versions);
    private sealed record Rewrap(string ActiveKeyId, int SecretVersions, int SigningKeys);
    private sealed record Exchange(Guid JobId, Dictionary<string, string> Secrets);
    private sealed record Discovery(string issuer, string jwks_uri);
}
