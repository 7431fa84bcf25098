using System.Text.Json;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>
/// The commands the Aspire dashboard offers on each service, run as the dashboard runs them (Aspire's
/// ResourceCommandService), against the real services of the AppHost: each is an API call and must do what it says.
/// </summary>
[Collection(AppHostCollection.Name)]
public sealed class ResourceCommandTests(AppHostFixture fx)
{
    private async Task<ExecuteCommandResult> RunAsync(string resource, string command)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var result = await fx.App.Services.GetRequiredService<ResourceCommandService>().ExecuteCommandAsync(resource, command, timeout.Token);
        Assert.True(result.Success, $"{resource} {command}: {result.Message}");
        return result;
    }

    [Fact]
    public async Task Drain_holds_new_jobs_until_resume_and_then_they_run()
    {
        // The API the command calls is the operators' alone.
        using (var provisioner = fx.App.CreateHttpClient("provisioner"))
        using (var refused = await provisioner.PostAsync("/provisioner/admin/drain", null))
        {
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, refused.StatusCode);
        }
        var drained = await RunAsync("provisioner", "drain");
        Guid id;
        try
        {
            Assert.True(JsonDocument.Parse(drained.Data!.Value).RootElement.GetProperty("draining").GetBoolean());
            id = await fx.Intake.SubmitAsync(JobClient.Job("submitted while drained", null, ("hello", "echo after resume")));
            await fx.Intake.WaitForEventAsync(id, "job.waiting");
            await Task.Delay(TimeSpan.FromSeconds(2));
            var events = await fx.Intake.EventTypesAsync(id);
            Assert.DoesNotContain("runner.started", events);
            Assert.Contains("is draining", await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/events"));
        }
        finally
        {
            var resumed = await RunAsync("provisioner", "resume");
            Assert.False(JsonDocument.Parse(resumed.Data!.Value).RootElement.GetProperty("draining").GetBoolean());
        }
        Assert.Equal("succeeded", (await fx.Intake.WaitForTerminalAsync(id)).GetProperty("status").GetString());
        await fx.WaitForVerifiedRunnerEndAsync(id);
    }

    [Fact]
    public async Task Rotate_signing_key_publishes_a_new_key_and_jobs_still_run_and_verify()
    {
        var before = await fx.SecretsAdmin.GetStringAsync("/.well-known/jwks.json");
        var rotated = JsonDocument.Parse((await RunAsync("secrets-broker", "rotate-signing-key")).Data!.Value).RootElement;
        var kid = rotated.GetProperty("kid").GetString()!;
        Assert.DoesNotContain(kid, before);
        Assert.NotEqual(kid, rotated.GetProperty("previousKid").GetString());
        var after = await fx.SecretsAdmin.GetStringAsync("/.well-known/jwks.json");
        Assert.Contains(kid, after);
        Assert.Contains(rotated.GetProperty("previousKid").GetString()!, after); // published for the overlap

        // A job after the rotation gets a token and an attestation signed by the new key.
        var id = await fx.Intake.SubmitAsync(JobClient.Job("after a rotation", null, ("hello", "echo signed anew")));
        Assert.Equal("succeeded", (await fx.Intake.WaitForTerminalAsync(id)).GetProperty("status").GetString());
        await fx.WaitForVerifiedRunnerEndAsync(id);
        using var attestation = JsonDocument.Parse(await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/attestation"));
        Assert.Equal(kid, attestation.RootElement.GetProperty("signatures")[0].GetProperty("keyid").GetString());
    }

    [Fact]
    public async Task Run_a_hello_job_submits_one_that_succeeds_and_cache_usage_answers()
    {
        var hello = await RunAsync("intake", "run-hello-job");
        var id = Guid.Parse(JsonDocument.Parse(hello.Data!.Value).RootElement.GetProperty("id").GetString()!);
        Assert.Contains($"/api/v1/jobs/{id}/logs", hello.Message);
        Assert.Equal("succeeded", (await fx.Intake.WaitForTerminalAsync(id)).GetProperty("status").GetString());
        Assert.Contains("did not exist a moment ago", await fx.Intake.GetStringAsync($"/api/v1/jobs/{id}/logs"));

        var usage = await RunAsync("cache", "cache-usage");
        Assert.Equal(JsonValueKind.Array, JsonDocument.Parse(usage.Data!.Value).RootElement.ValueKind);
    }
}
