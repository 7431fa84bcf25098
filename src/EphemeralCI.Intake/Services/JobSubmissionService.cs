using EphemeralCI.Intake.Telemetry;
using EphemeralCI.Persistence;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Contracts.Messages;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Infrastructure.EntityConfigurations;
using EphemeralCI.Intake.Model;
using EphemeralCI.Messaging;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Intake.Services;

public enum SubmissionOutcome
{
    Accepted,
    /// <summary>A retry with the same Idempotency-Key and body: the job it created before.</summary>
    Replayed,
    /// <summary>The Idempotency-Key was used before with a different body.</summary>
    KeyReused,
}

/// <summary>Who submits: an API key (its id scopes Idempotency-Key), or a federated identity (its <paramref name="SubmittedBy"/> does).</summary>
public sealed record JobSubmitter(Guid? ApiKeyId, string SubmittedBy);

/// <summary>
/// Accepts a validated job: the job row, its first timeline entry and the RunJob message are
/// written in one transaction, so a job that got its 202 always reaches the provisioner.
/// </summary>
public sealed class JobSubmissionService(IntakeDbContext db, TimeProvider clock, JobSpecSeal seal)
{
    public async Task<(SubmissionOutcome Outcome, Job Job)> SubmitAsync(
        JobSpec spec, RunnerTemplateDefinition template, JobSubmitter submitter, string? idempotencyKey, CancellationToken ct)
    {
        var accepted = Normalize(spec, template);
        var specJson = JsonSerializer.Serialize(accepted, JsonSerializerOptions.Web);
        var requestHash = idempotencyKey is null ? null : Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(specJson)));

        if (idempotencyKey is not null && await FindPreviousAsync(submitter, idempotencyKey, ct) is { } previous)
        {
            return (previous.RequestHash == requestHash ? SubmissionOutcome.Replayed : SubmissionOutcome.KeyReused, previous);
        }

        var now = clock.GetUtcNow();
        var job = new Job
        {
            Id = Guid.CreateVersion7(now),
            Name = accepted.Name,
            Repository = accepted.Repository!,
            Ref = accepted.Ref!,
            CommitSha = accepted.CommitSha!,
            RunnerTemplate = accepted.RunnerTemplate!,
            Environment = accepted.Environment,
            SubmittedBy = submitter.SubmittedBy,
            // maskedEnv values sealed at rest (the request hash above is of what was sent, as before).
            Spec = JsonSerializer.Serialize(seal.Seal(accepted), JsonSerializerOptions.Web),
            TimeoutSeconds = accepted.TimeoutSeconds!.Value,
            CreatedAt = now,
            IdempotencyKey = idempotencyKey,
            ApiKeyId = submitter.ApiKeyId,
            RequestHash = requestHash,
            TraceParent = JobTrace.Current(),
        };
        db.Jobs.Add(job);
        db.JobEvents.Add(new JobEvent
        {
            JobId = job.Id,
            Type = JobEventTypes.Queued,
            At = now,
            Message = $"queued for runner template '{job.RunnerTemplate}'",
        });
        db.AddToOutbox(job.RunJobMessage(now), clock);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException ex) when (idempotencyKey is not null && ex.IsUniqueViolation(JobEntityTypeConfiguration.IdempotencyIndex))
        {
            // Two retries raced; the other one committed first. Answer with its job.
            db.ChangeTracker.Clear();
            var winner = await FindPreviousAsync(submitter, idempotencyKey, ct)
                ?? throw new InvalidOperationException("idempotency conflict without a stored job");
            return (winner.RequestHash == requestHash ? SubmissionOutcome.Replayed : SubmissionOutcome.KeyReused, winner);
        }
        IntakeTelemetry.JobSubmitted(job.RunnerTemplate);
        return (SubmissionOutcome.Accepted, job);
    }

    /// <summary>The spec as the runner will get it: canonical sha, the template's timeout filled in.</summary>
    public static JobSpec Normalize(JobSpec spec, RunnerTemplateDefinition template) => spec with
    {
        CommitSha = spec.CommitSha?.ToLowerInvariant(),
        TimeoutSeconds = spec.TimeoutSeconds ?? template.DefaultTimeoutSeconds,
        Session = spec.Session is null ? null : spec.Session with { IdleTimeoutSeconds = spec.Session.IdleTimeoutSeconds ?? SessionSpec.DefaultIdleTimeoutSeconds },
    };

    // A federated submitter has no key id: its retries are recognised by who it is (not enforced by the
    // unique index, which only covers keys; two racing retries of one CI job could both be accepted).
    private Task<Job?> FindPreviousAsync(JobSubmitter submitter, string idempotencyKey, CancellationToken ct) => submitter.ApiKeyId is { } keyId
        ? db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.ApiKeyId == keyId && j.IdempotencyKey == idempotencyKey, ct)
        : db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.ApiKeyId == null && j.SubmittedBy == submitter.SubmittedBy && j.IdempotencyKey == idempotencyKey, ct);
}
