using System.Net;
using System.Net.Http.Json;
using EphemeralCI.Attestations;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>Every job the suite runs to the end must end with a valid attestation whose teardown check passed.</summary>
public static class Attested
{
    /// <summary>
    /// Waits for the runner's end on the timeline, then for the job's attestation, and checks it with
    /// the broker's published JWKS: signature, subject (the job's repository and commit), the job's id,
    /// and that the independent teardown check found nothing left.
    /// </summary>
    public static async Task<JobStatement> WaitForVerifiedRunnerEndAsync(this IEphemeralCISystem fx, Guid id)
    {
        await fx.Intake.WaitForEventAsync(id, "runner.destroyed");
        var job = await fx.Intake.GetJobAsync(id);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        DsseEnvelope? envelope = null;
        while (envelope is null)
        {
            using var response = await fx.Intake.GetAsync($"/api/v1/jobs/{id}/attestation");
            if (response.StatusCode == HttpStatusCode.OK) envelope = await response.Content.ReadFromJsonAsync<DsseEnvelope>();
            else if (DateTime.UtcNow > deadline) Assert.Fail($"job {id} has no attestation: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            else await Task.Delay(200);
        }
        var jwks = JsonWebKeySet.Parse(await fx.SecretsAdmin.GetStringAsync("/.well-known/jwks.json"));
        var result = AttestationVerifier.Verify(envelope, jwks,
            new ExpectedSubject(id, job.GetProperty("repository").GetString(), job.GetProperty("commitSha").GetString()));
        Assert.True(result.Valid, $"job {id}'s attestation: {string.Join("; ", result.Problems)}");
        Assert.True(result.Statement!.Predicate.Teardown!.Passed);
        return result.Statement;
    }
}
