using System.Net.Http.Json;
using System.Text;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// A secret set by an administrator reaches only the job its policy allows, inside the real
/// sandbox, and never appears in the job's log: neither raw nor base64-encoded.
/// </summary>
public abstract class SecretsTests(IEphemeralCISystem fx)
{
    [Fact]
    public async Task Job_on_an_allowed_ref_gets_its_secret_masked_and_a_feature_branch_is_refused()
    {
        var value = "s3cr3t-" + Guid.NewGuid().ToString("N");
        using (var put = await fx.SecretsAdmin.PutAsJsonAsync("/api/v1/admin/secrets/DEPLOY_TOKEN", new
        {
            value,
            repositories = new[] { "acme/*" },
            refs = new[] { "refs/heads/main" },
        }))
        {
            Assert.True(put.IsSuccessStatusCode, $"put secret answered {(int)put.StatusCode}: {await put.Content.ReadAsStringAsync()}");
        }

        object Job(string gitRef) => new
        {
            name = "uses a secret",
            repository = "acme/widgets",
            @ref = gitRef,
            commitSha = "0123456789abcdef0123456789abcdef01234567",
            runnerTemplate = "default",
            secrets = new[] { "DEPLOY_TOKEN" },
            steps = new[]
            {
                new { name = "use", run = "test -n \"$DEPLOY_TOKEN\" && echo \"token: $DEPLOY_TOKEN\" && printf %s \"$DEPLOY_TOKEN\" | base64 -w0 && echo" },
            },
        };

        var allowed = await fx.Intake.SubmitAsync(Job("refs/heads/main"));
        var job = await fx.Intake.WaitForTerminalAsync(allowed);
        var logs = await fx.Intake.GetStringAsync($"/api/v1/jobs/{allowed}/logs");
        Assert.True(job.GetProperty("status").GetString() == "succeeded",
            $"job {allowed} ended {job.GetProperty("status").GetString()}: {job.GetProperty("statusReason")}\nevents: {string.Join(", ", await fx.Intake.EventTypesAsync(allowed))}\nlog:\n{logs}");
        Assert.Contains("token: ", logs);
        Assert.DoesNotContain(value, logs);
        Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes(value)).TrimEnd('='), logs);

        // A feature branch asks for the same secret: policy refuses it, so the job fails before its step.
        var refused = await fx.Intake.SubmitAsync(Job("refs/heads/feature/x"));
        var refusedJob = await fx.Intake.WaitForTerminalAsync(refused);
        Assert.Equal("failed", refusedJob.GetProperty("status").GetString());
        Assert.DoesNotContain(value, await fx.Intake.GetStringAsync($"/api/v1/jobs/{refused}/logs"));

        await fx.WaitForVerifiedRunnerEndAsync(allowed);
        await RunnerTraces.AssertGoneAsync(allowed, fx.RunnerWorkRoot);
    }
}

[Collection(AppHostCollection.Name)]
public sealed class SecretsTestsOnAppHost(AppHostFixture fx) : SecretsTests(fx);

[Collection(ServerCollection.Name)]
public sealed class SecretsTestsOnServer(ServerFixture fx) : SecretsTests(fx);
