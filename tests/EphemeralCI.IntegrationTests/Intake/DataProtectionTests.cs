using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.Intake.Auth;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.EntityFrameworkCore;
using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>A second intake replica on the database of <paramref name="first"/>, with the key-encryption secret given.</summary>
public sealed class ReplicaIntakeFactory(IntakeFactory first, string dataProtectionKey) : IntakeFactory
{
    public override Task InitializeAsync()
    {
        DatabaseConnectionString = first.DatabaseConnectionString;
        DataProtectionKey = dataProtectionKey;
        _ = Services;
        return Task.CompletedTask;
    }
}

/// <summary>Two intake replicas share one encrypted key ring in intakedb (Infrastructure/DataProtection); maskedEnv values are sealed at rest.</summary>
public sealed partial class DataProtectionTests(IntakeFactory app) : IClassFixture<IntakeFactory>
{
    [Fact]
    public async Task A_session_and_an_antiforgery_token_from_one_replica_work_on_the_other_and_the_stored_keys_are_encrypted()
    {
        await using var replica = new ReplicaIntakeFactory(app, app.DataProtectionKey);
        await replica.InitializeAsync();
        var options = new WebApplicationFactoryClientOptions { AllowAutoRedirect = false, HandleCookies = false };
        using var a = app.CreateClient(options);
        using var b = replica.CreateClient(options);

        // The form and its antiforgery cookie from B, posted to A.
        using var form = await b.GetAsync("/signin");
        var antiforgeryCookie = Cookies(form);
        var token = FormToken().Match(await form.Content.ReadAsStringAsync()).Groups[1].Value;
        using var signIn = new HttpRequestMessage(HttpMethod.Post, "/signin")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["key"] = app.AdminKey, ["__RequestVerificationToken"] = token }),
        };
        signIn.Headers.Add("Cookie", antiforgeryCookie);
        using var signedIn = await a.SendAsync(signIn);
        Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
        var session = Cookies(signedIn);
        Assert.Contains(WebUiCookie, session);

        // A's session cookie, read by B.
        using var jobs = new HttpRequestMessage(HttpMethod.Get, "/");
        jobs.Headers.Add("Cookie", session);
        using var page = await b.SendAsync(jobs);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        using var anonymous = await b.GetAsync("/");
        Assert.Equal(HttpStatusCode.Redirect, anonymous.StatusCode);

        // What the database holds is the AES-GCM envelope, not the key (<masterKey><value>…</value>).
        var stored = await app.WithDbAsync(db => db.DataProtectionKeys.AsNoTracking().Select(k => k.Xml!).ToListAsync());
        Assert.NotEmpty(stored);
        Assert.All(stored, xml =>
        {
            Assert.Contains("<encryptedSecret", xml);
            Assert.Contains("<encryptedKey", xml);
            Assert.DoesNotContain("<masterKey", xml);
        });
    }

    [Fact]
    public async Task A_replica_with_another_secret_refuses_to_start_and_names_the_setting()
    {
        // The ring has a key by now (the host made one at start).
        await app.WithDbAsync(db => db.DataProtectionKeys.AnyAsync()).ContinueWith(t => Assert.True(t.Result));
        var wrong = new ReplicaIntakeFactory(app, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        var failure = await Record.ExceptionAsync(wrong.InitializeAsync);
        Assert.NotNull(failure);
        Assert.Contains("Intake:DataProtection:KeyEncryptionKey", failure.ToString());
        try { await wrong.DisposeAsync(); } catch (Exception) { /* it never started */ }
    }

    [Fact]
    public async Task MaskedEnv_values_are_sealed_in_the_row_hidden_from_the_read_api_and_opened_for_the_runner()
    {
        const string Jit = "jit-config-3b1f0c9e-not-for-anyone-but-the-runner";
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(ci, new
        {
            name = "gha",
            repository = "acme/widgets",
            @ref = "refs/heads/main",
            commitSha = Jobs.Sha,
            runnerTemplate = "default",
            steps = new object[] { new { name = "run", run = "./run.sh", env = new Dictionary<string, string> { ["ACTIONS_RUNNER_INPUT_JITCONFIG"] = Jit } } },
            env = new Dictionary<string, string> { ["ACTIONS_RUNNER_INPUT_JITCONFIG"] = Jit, ["CI"] = "true" },
            maskedEnv = new[] { "ACTIONS_RUNNER_INPUT_JITCONFIG" },
        });

        var row = await app.WithDbAsync(db => db.Jobs.AsNoTracking().Where(j => j.Id == id).Select(j => j.Spec).SingleAsync());
        Assert.DoesNotContain(Jit, row);
        Assert.Contains("eci-sealed:v1:", row);
        Assert.DoesNotContain(Jit, await ci.GetStringAsync($"/api/v1/jobs/{id}"));
        Assert.DoesNotContain(Jit, await ci.GetStringAsync("/api/v1/jobs"));

        using var runner = app.RunnerClient(id);
        var job = await runner.GetFromJsonAsync<RunnerJob>(RunnerApiRoutes.Job);
        Assert.Equal(Jit, job!.Spec.Env!["ACTIONS_RUNNER_INPUT_JITCONFIG"]);
        Assert.Equal("true", job.Spec.Env["CI"]);
        Assert.Equal(Jit, job.Spec.Steps![0].Env!["ACTIONS_RUNNER_INPUT_JITCONFIG"]);
    }

    [Fact]
    public async Task A_row_stored_before_sealing_still_reaches_the_runner()
    {
        using var ci = await app.ClientWithScopesAsync(ApiKeyScopes.Submit, ApiKeyScopes.Read);
        var id = await Jobs.SubmitAsync(ci);
        // As an older intake wrote it: maskedEnv with a plain value.
        await app.WithDbAsync(async db =>
        {
            var job = await db.Jobs.SingleAsync(j => j.Id == id);
            var plain = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(job.Spec)!;
            plain["env"] = JsonSerializer.SerializeToElement(new Dictionary<string, string> { ["OLD_TOKEN"] = "plain-old-value" });
            plain["maskedEnv"] = JsonSerializer.SerializeToElement(new[] { "OLD_TOKEN" });
            job.Spec = JsonSerializer.Serialize(plain);
            return await db.SaveChangesAsync();
        });

        using var runner = app.RunnerClient(id);
        var fetched = await runner.GetFromJsonAsync<RunnerJob>(RunnerApiRoutes.Job);
        Assert.Equal("plain-old-value", fetched!.Spec.Env!["OLD_TOKEN"]);
    }

    private const string WebUiCookie = "eci_session";

    private static string Cookies(HttpResponseMessage response) =>
        string.Join("; ", response.Headers.TryGetValues("Set-Cookie", out var values) ? values.Select(v => v.Split(';')[0]) : []);

    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex FormToken();
}
