using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using EphemeralCI.Attestations;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Model;
using EphemeralCI.Intake.Services;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Intake.Attestations;

public enum AttestationOutcome
{
    Attested,
    /// <summary>Not over yet, or its runner not destroyed yet: asked again when it is.</summary>
    NotReady,
    AlreadyAttested,
    /// <summary>Its runner was destroyed by a provisioner that did not check the teardown: nothing to vouch for.</summary>
    NotVerifiable,
    NotFound,
}

/// <summary>
/// Attests one job once it is over and its runner was destroyed (and checked): builds the statement,
/// has the broker sign it, and keeps the envelope as the timeline entry <c>job.attested</c> — once per
/// job (a fixed source id, so two replicas racing write one). Caches are the cache's own record of what it served
/// the attempt (<see cref="CacheUseSource"/>). Throws <see cref="AttestationSigningException"/> when the signer or
/// the cache fails; the sweep tries again.
/// </summary>
public sealed class JobAttestor(
    IntakeDbContext db, JobUpdater jobs, IAttestationSigner signer, CacheUseSource cacheUses, IOptions<AttestationOptions> options, IOptions<IntakeOptions> intake)
{
    public async Task<AttestationOutcome> AttestAsync(Guid jobId, CancellationToken ct)
    {
        var job = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == jobId, ct);
        if (job is null) return AttestationOutcome.NotFound;
        if (!job.Status.IsTerminal()) return AttestationOutcome.NotReady;
        var timeline = await db.JobEvents.AsNoTracking().Where(e => e.JobId == jobId).OrderBy(e => e.At).ThenBy(e => e.Id).ToListAsync(ct);
        if (timeline.Any(e => e.Type == JobEventTypes.Attested)) return AttestationOutcome.AlreadyAttested;
        // The runner of the attempt that decided the job (a retried job's earlier runners were destroyed before it began).
        if (job.DestroyedAttempt != job.Attempt || timeline.LastOrDefault(e => e.Type == JobEventTypes.RunnerDestroyed) is not { } destroyed) return AttestationOutcome.NotReady;
        if (!HasTeardownReport(destroyed)) return AttestationOutcome.NotVerifiable;

        var served = await cacheUses.ForAttemptAsync(jobId, job.Attempt, ct);
        var statement = JobStatementBuilder.Build(job, timeline, options.Value.BuilderId, intake.Value.TrustPolicies, served);
        var json = JsonSerializer.SerializeToNode(statement, AttestationFormat.Json)!.AsObject();
        var envelope = await signer.SignAsync(new AttestationRequest(jobId, json), ct);
        var kid = envelope.Signatures.FirstOrDefault()?.KeyId;
        var (outcome, _) = await jobs.UpdateAsync(jobId, SourceId(jobId), change =>
        {
            change.AddEvent(JobEventTypes.Attested, $"attestation signed (key {kid}); teardown check {(statement.Predicate.Teardown?.Passed == true ? "passed" : "FAILED")}",
                new AttestedData(envelope));
            return true;
        }, ct);
        return outcome == JobUpdateOutcome.Duplicate ? AttestationOutcome.AlreadyAttested : AttestationOutcome.Attested;
    }

    private static bool HasTeardownReport(JobEvent destroyed)
    {
        if (destroyed.Data is null) return false;
        using var data = JsonDocument.Parse(destroyed.Data);
        return data.RootElement.TryGetProperty("teardown", out var teardown) && teardown.ValueKind == JsonValueKind.Object;
    }

    /// <summary>The envelope kept for a job, or null while it has none.</summary>
    public static DsseEnvelope? EnvelopeOf(JobEvent? attested) =>
        attested?.Data is { } data ? JsonSerializer.Deserialize<AttestedData>(data, JsonSerializerOptions.Web)?.Envelope : null;

    /// <summary>One attestation per job, whoever writes it.</summary>
    public static Guid SourceId(Guid jobId) => new(SHA256.HashData(Encoding.UTF8.GetBytes($"job-attested:{jobId}")).AsSpan(0, 16));

    private sealed record AttestedData(DsseEnvelope Envelope);
}
