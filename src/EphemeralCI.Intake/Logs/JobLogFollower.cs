using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Model;
using Microsoft.EntityFrameworkCore;

namespace EphemeralCI.Intake.Logs;

/// <summary>
/// Streams a job's log as server-sent events: what is stored, then what arrives, then an
/// <c>end</c> event with the final status. Subscribe first, read Postgres from the last offset
/// sent, wait for a wake-up or the poll interval, repeat — so a chunk committed between a read
/// and the wait is picked up by the next read rather than lost.
/// </summary>
public sealed class JobLogFollower(IntakeDbContext db, JobLogStore store, IJobLiveNotifier notifier)
{
    public const string LogEvent = "log";
    public const string EndEvent = "end";
    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);
    private const int BatchSize = 200;

    /// <summary>Where a stream starts: a reconnecting EventSource sends the id of the last event it got (its offset), so resume there.</summary>
    public static long ResumeOffset(Microsoft.AspNetCore.Http.HttpRequest request) =>
        long.TryParse(request.Headers["Last-Event-ID"], out var lastId) && lastId > 0 ? lastId : 0;

    public async IAsyncEnumerable<SseItem<string>> FollowAsync(Guid jobId, long fromOffset, [EnumeratorCancellation] CancellationToken ct)
    {
        await using var wakeup = await notifier.SubscribeAsync(jobId);
        var next = fromOffset;
        while (true)
        {
            // Read the status before the chunks: if it was terminal before this read, no chunk can
            // arrive after it (the runner API refuses logs for a finished job), so the read is complete.
            var state = await db.Jobs.AsNoTracking().Where(j => j.Id == jobId)
                .Select(j => new { j.Status, j.ExitCode, j.StatusReason })
                .FirstOrDefaultAsync(ct);
            if (state is null) yield break;

            List<JobLogChunk> chunks;
            do
            {
                chunks = await store.ReadFromAsync(jobId, next, BatchSize, ct);
                foreach (var chunk in chunks)
                {
                    next = chunk.End;
                    if (chunk.Text.Length == 0) continue; // dropped past the cap; only keeps offsets continuous
                    yield return new SseItem<string>(chunk.Text, LogEvent) { EventId = next.ToString(System.Globalization.CultureInfo.InvariantCulture) };
                }
            } while (chunks.Count == BatchSize);

            if (state.Status.IsTerminal())
            {
                var end = JsonSerializer.Serialize(new LogEnd(JobStatusNames.ToName(state.Status), state.ExitCode, state.StatusReason), JsonSerializerOptions.Web);
                yield return new SseItem<string>(end, EndEvent);
                yield break;
            }
            try
            {
                await wakeup.WaitAsync(PollInterval, ct);
            }
            catch (OperationCanceledException)
            {
                yield break; // the client went away
            }
        }
    }

    private sealed record LogEnd(string Status, int? ExitCode, string? Reason);
}
