using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// Issue 13 as the user who found it tried it, on the whole system: a submit+read key may claim only
/// the repositories, refs and environments it is bound to, so it can no longer have another
/// repository's production secret handed to a runner; and an environment-bound secret reaches the
/// job whose key may name that environment, and no other.
/// </summary>
public abstract class VerifiedIdentityTests(IEphemeralCISystem fx)
{
    private async Task<HttpClient> KeyAsync(string[] repositories, string[]? environments = null)
    {
        using var created = await fx.Intake.PostAsJsonAsync("/api/v1/api-keys", new
        {
            name = "e2e-bound-" + Guid.NewGuid().ToString("N")[..6],
            scopes = new[] { "submit", "read" },
            repositories,
            refs = new[] { "refs/heads/**" },
            environments,
        });
        var body = await created.Content.ReadAsStringAsync();
        Assert.True(created.IsSuccessStatusCode, $"creating a key answered {(int)created.StatusCode}: {body}");
        var client = new HttpClient { BaseAddress = fx.Intake.BaseAddress, Timeout = fx.Intake.Timeout };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", JsonDocument.Parse(body).RootElement.GetProperty("key").GetString());
        return client;
    }

    private static object Job(string name, string repository, string? environment, string secret) => new
    {
        name,
        repository,
        @ref = "refs/heads/main",
        commitSha = "0123456789abcdef0123456789abcdef01234567",
        runnerTemplate = "default",
        environment,
        secrets = new[] { secret },
        steps = new[] { new { name = "use", run = $"test -n \"${secret}\" && echo got it" } },
    };

    [Fact]
    public async Task A_bound_key_cannot_claim_another_repository_and_an_environment_secret_reaches_only_the_job_allowed_that_environment()
    {
        var suffix = Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var secret = "PROD_TOKEN_" + suffix;
        var value = "prod-" + Guid.NewGuid().ToString("N");
        using (var put = await fx.SecretsAdmin.PutAsJsonAsync($"/api/v1/admin/secrets/{secret}", new
        {
            value,
            repositories = new[] { "acme/*" },
            refs = new[] { "refs/heads/main" },
            environment = "production",
        }))
        {
            Assert.True(put.IsSuccessStatusCode, $"put secret answered {(int)put.StatusCode}: {await put.Content.ReadAsStringAsync()}");
        }

        // The original report: a key for one repository claims acme/prod's main to get its secret.
        using var devKey = await KeyAsync(["acme/dev"]);
        var name = "claims acme/prod " + suffix;
        using (var claim = await devKey.PostAsJsonAsync("/api/v1/jobs", Job(name, "acme/prod", "production", secret)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, claim.StatusCode);
            var problem = await claim.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("repository", problem.GetProperty("field").GetString());
        }
        // …nor its own repository in an environment it was not given.
        using (var env = await devKey.PostAsJsonAsync("/api/v1/jobs", Job(name, "acme/dev", "production", secret)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, env.StatusCode);
            Assert.Equal("environment", (await env.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("field").GetString());
        }
        var listed = await fx.Intake.GetStringAsync("/api/v1/jobs?pageSize=100");
        Assert.DoesNotContain(name, listed); // nothing was stored

        // A key allowed the environment: its job gets the secret.
        using var deployKey = await KeyAsync(["acme/widgets"], ["production"]);
        var allowed = await deployKey.SubmitAsync(Job("deploys " + suffix, "acme/widgets", "production", secret));
        var job = await deployKey.WaitForTerminalAsync(allowed);
        var log = await deployKey.GetStringAsync($"/api/v1/jobs/{allowed}/logs");
        Assert.True(job.GetProperty("status").GetString() == "succeeded", $"{job}\n{log}");
        Assert.Contains("got it", log);
        Assert.DoesNotContain(value, log);

        // The same repository without the environment: the broker refuses the environment-bound secret.
        var without = await deployKey.SubmitAsync(Job("no environment " + suffix, "acme/widgets", null, secret));
        var refused = await deployKey.WaitForTerminalAsync(without);
        Assert.Equal("failed", refused.GetProperty("status").GetString());
        Assert.DoesNotContain(value, await deployKey.GetStringAsync($"/api/v1/jobs/{without}/logs"));

        await fx.WaitForVerifiedRunnerEndAsync(allowed);
        await fx.WaitForVerifiedRunnerEndAsync(without);

        // And the dev key cannot even see the deploy job.
        using var peek = await devKey.GetAsync($"/api/v1/jobs/{allowed}");
        Assert.Equal(HttpStatusCode.NotFound, peek.StatusCode);
    }
}

[Collection(AppHostCollection.Name)]
public sealed class VerifiedIdentityTestsOnAppHost(AppHostFixture fx) : VerifiedIdentityTests(fx);

[Collection(ServerCollection.Name)]
public sealed class VerifiedIdentityTestsOnServer(ServerFixture fx) : VerifiedIdentityTests(fx);
