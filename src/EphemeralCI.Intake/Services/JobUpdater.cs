using EphemeralCI.Intake.Telemetry;
using EphemeralCI.Persistence;
using System.Text.Json;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Infrastructure.EntityConfigurations;
using EphemeralCI.Intake.Logs;
using EphemeralCI.Intake.Model;
using EphemeralCI.Messaging;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Intake.Services;

public enum JobUpdateOutcome
{
    NotFound,
    Applied,
    /// <summary>The change did not apply (e.g. the job is already terminal); nothing was written.</summary>
    Unchanged,
    /// <summary>The message or call that asked for this change was already recorded.</summary>
    Duplicate,
}

/// <summary>What a change to one job may write in its transaction besides the job row.</summary>
public sealed class JobChange(IntakeDbContext db, Job job, DateTimeOffset now, Guid? sourceMessageId, TimeProvider clock)
{
    private bool _sourceUsed;

    public Job Job => job;
    public DateTimeOffset Now => now;
    internal bool WroteSomething { get; private set; }

    /// <summary>
    /// Adds a timeline entry. The first entry carries the source message id, whose unique index
    /// turns a redelivery into a no-op.
    /// </summary>
    public void AddEvent(string type, string? message, object? data = null, DateTimeOffset? at = null)
    {
        db.JobEvents.Add(new JobEvent
        {
            JobId = job.Id,
            Type = type,
            At = at ?? now,
            Message = message,
            Data = data is null ? null : JsonSerializer.Serialize(data, JsonSerializerOptions.Web),
            SourceMessageId = _sourceUsed ? null : sourceMessageId,
        });
        _sourceUsed = true;
        WroteSomething = true;
    }

    public void Publish<TMessage>(TMessage message) where TMessage : class
    {
        db.AddToOutbox(message, clock);
        WroteSomething = true;
    }

    public void MarkChanged() => WroteSomething = true;
}

/// <summary>
/// Applies a change to one job with optimistic concurrency (Postgres xmin): the runner, the
/// provisioner's messages and a cancel may race, and each sees the others' result before it
/// decides. Wakes log followers after the commit (the outbox's dispatcher is woken by its interceptor).
/// </summary>
public sealed class JobUpdater(IntakeDbContext db, IJobLiveNotifier notifier, TimeProvider clock)
{
    private const int MaxAttempts = 8;

    /// <param name="change">Returns false to leave the job as it is (nothing is saved).</param>
    public async Task<(JobUpdateOutcome Outcome, Job? Job)> UpdateAsync(
        Guid jobId, Guid? sourceMessageId, Func<JobChange, bool> change, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            db.ChangeTracker.Clear();
            var job = await db.Jobs.FirstOrDefaultAsync(j => j.Id == jobId, ct);
            if (job is null) return (JobUpdateOutcome.NotFound, null);
            if (sourceMessageId is { } source && await db.JobEvents.AnyAsync(e => e.JobId == jobId && e.SourceMessageId == source, ct))
            {
                return (JobUpdateOutcome.Duplicate, job);
            }

            var before = job.Status;
            var pending = new JobChange(db, job, clock.GetUtcNow(), sourceMessageId, clock);
            if (!change(pending) || !(pending.WroteSomething || db.ChangeTracker.HasChanges()))
            {
                db.ChangeTracker.Clear();
                return (JobUpdateOutcome.Unchanged, job);
            }
            try
            {
                await db.SaveChangesAsync(ct);
            }
            catch (DbUpdateConcurrencyException) when (attempt < MaxAttempts)
            {
                continue; // someone else changed the job first: decide again on what they wrote
            }
            catch (DbUpdateException ex) when (ex.IsUniqueViolation(JobEventEntityTypeConfiguration.SourceMessageIndex))
            {
                db.ChangeTracker.Clear();
                return (JobUpdateOutcome.Duplicate, job);
            }
                        IntakeTelemetry.StatusChanged(job, before);
            await notifier.NotifyAsync(jobId);
            return (JobUpdateOutcome.Applied, job);
        }
    }
}
