using EphemeralCI.Contracts.Messages;
using EphemeralCI.SecretsBroker.Audit;
using EphemeralCI.Persistence;
using EphemeralCI.SecretsBroker.Infrastructure;
using EphemeralCI.SecretsBroker.Infrastructure.Configurations;
using EphemeralCI.JobTokens;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace EphemeralCI.SecretsBroker.Consumers;

/// <summary>
/// The job ended (completed, failed, cancelled, timed out, lost): revoke its token at once, so a
/// token stolen during the job buys nothing afterwards. Idempotent: revoking twice is the same as
/// once, and the audit line is written only the first time.
/// </summary>
public sealed class RunnerFinishedConsumer(
    IJobRevocationList revocations, SecretsDbContext db, IOptions<SecretsBrokerOptions> options, TimeProvider clock) : IConsumer<RunnerFinished>
{
    public async Task Consume(ConsumeContext<RunnerFinished> context)
    {
        var m = context.Message;
        // Longer than any token can live, so the mark outlasts every token of the job.
        await revocations.RevokeAsync(m.JobId, m.Attempt, options.Value.MaxTokenLifetime + TimeSpan.FromHours(1), context.CancellationToken);
        // One line per attempt (a job retried after its runner was lost has a token per attempt). The unique index
        // makes it one even when two replicas, or a redelivery, handle the same message at once.
        // Lines from before attempts were recorded have none: they were all first attempts.
        if (await db.AuditEntries.AnyAsync(e => e.JobId == m.JobId && e.Action == AuditActions.TokenRevoked
                && (e.Attempt == m.Attempt || (m.Attempt == 1 && e.Attempt == null)), context.CancellationToken)) return;
        db.Audit(clock, "provisioner", AuditActions.TokenRevoked, jobId: m.JobId, detail: $"runner finished: {m.Outcome}", attempt: m.Attempt);
        try
        {
            await db.SaveChangesAsync(context.CancellationToken);
        }
        catch (DbUpdateException ex) when (ex.IsUniqueViolation(AuditEntryConfiguration.OneRevocationPerAttemptIndex))
        {
            // Another handler wrote it first.
        }
    }
}
