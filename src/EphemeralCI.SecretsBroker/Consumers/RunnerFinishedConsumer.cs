using EphemeralCI.Contracts.Messages;
using EphemeralCI.SecretsBroker.Audit;
using EphemeralCI.SecretsBroker.Infrastructure;
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
        // One line per attempt: a job retried after its runner was lost has a token per attempt.
        var detail = $"runner finished: {m.Outcome}" + (m.Attempt > 1 ? $"; attempt={m.Attempt}" : "");
        var attemptMark = $"attempt={m.Attempt}";
        if (!await db.AuditEntries.AnyAsync(e => e.JobId == m.JobId && e.Action == AuditActions.TokenRevoked
                && (m.Attempt > 1 ? e.Detail!.EndsWith(attemptMark) : !e.Detail!.Contains("attempt=")), context.CancellationToken))
        {
            db.Audit(clock, "provisioner", AuditActions.TokenRevoked, jobId: m.JobId, detail: detail);
            await db.SaveChangesAsync(context.CancellationToken);
        }
    }
}
