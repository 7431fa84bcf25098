using EphemeralCI.Persistence;
using System.Text;
using EphemeralCI.Contracts.Jobs;
using EphemeralCI.Intake.Infrastructure;
using EphemeralCI.Intake.Infrastructure.EntityConfigurations;
using EphemeralCI.Intake.Model;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace EphemeralCI.Intake.Logs;

public enum LogAppendStatus
{
    Appended,
    /// <summary>A chunk at this offset is already stored: a retry, acknowledged without change.</summary>
    Duplicate,
    /// <summary>The offset is not where the log ends; <see cref="LogAppendResult.ExpectedOffset"/> says where it does.</summary>
    WrongOffset,
    JobNotFound,
    /// <summary>The job has finished; its log is closed (<see cref="LogAppendResult.JobStatus"/> says how it ended).</summary>
    JobFinished,
    /// <summary>The writer's attempt is over: the job runs again on another runner, whose log this is now.</summary>
    AttemptOver,
}

public readonly record struct LogAppendResult(LogAppendStatus Status, long ExpectedOffset, string? JobStatus = null);

/// <summary>
/// A job's log in Postgres as a sequence of chunks keyed by the runner's byte offsets. Appends
/// must continue exactly where the log ends, which makes a retried POST harmless.
/// </summary>
public sealed class JobLogStore(IntakeDbContext db, IOptions<IntakeOptions> options, TimeProvider clock)
{
    public const int MaxChunkBytes = 1024 * 1024;

    public static string TruncationNote(long cap) =>
        $"\n[ephemeralci: log truncated, the limit of {cap / (1024 * 1024)} MiB per job was reached]\n";

    /// <param name="offset">Where the chunk goes in the log of <paramref name="attempt"/> (each attempt's agent counts from 0).</param>
    /// <param name="attempt">The attempt the writing runner's token is for: an older attempt's runner writes nothing more.</param>
    public Task<LogAppendResult> AppendAsync(Guid jobId, int attempt, long offset, ReadOnlyMemory<byte> body, CancellationToken ct) =>
        db.Database.CreateExecutionStrategy().ExecuteAsync(async () =>
        {
            db.ChangeTracker.Clear();
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            // FOR SHARE holds off a concurrent status change until this chunk is committed, so once a
            // job is terminal no chunk can still appear: followers may end their stream safely.
            // (SQLite's transaction already holds the database's one write lock: BEGIN IMMEDIATE.)
            var job = db.Database.IsSqlite()
                ? await db.Jobs.AsNoTracking().Where(j => j.Id == jobId)
                    .Select(j => new LogTarget(JobStatusNames.ToName(j.Status), j.Attempt, j.LogBase)).FirstOrDefaultAsync(ct)
                : (await db.Database.SqlQuery<LogTarget>(
                    // Column names as the snake-case convention maps LogTarget's properties.
                    $"SELECT status, attempt, log_base FROM jobs WHERE id = {jobId} FOR SHARE").ToListAsync(ct))
                    .FirstOrDefault();
            if (job is null) return new LogAppendResult(LogAppendStatus.JobNotFound, 0);
            if (JobStatusNames.Parse(job.Status).IsTerminal()) return new LogAppendResult(LogAppendStatus.JobFinished, 0, job.Status);
            if (job.Attempt != attempt) return new LogAppendResult(LogAppendStatus.AttemptOver, 0);
            var result = await AppendLockedAsync(jobId, job.LogBase + offset, body, ct);
            if (result.Status == LogAppendStatus.Appended) await tx.CommitAsync(ct);
            return result with { ExpectedOffset = result.ExpectedOffset - job.LogBase };
        });

    private sealed record LogTarget(string Status, int Attempt, long LogBase);

    /// <summary>Where the job's log ends now: the next attempt's log begins there.</summary>
    public async Task<long> EndAsync(Guid jobId, CancellationToken ct) =>
        await db.JobLogChunks.AsNoTracking().Where(c => c.JobId == jobId)
            .OrderByDescending(c => c.Offset).Select(c => c.Offset + c.Length).FirstOrDefaultAsync(ct);

    private async Task<LogAppendResult> AppendLockedAsync(Guid jobId, long offset, ReadOnlyMemory<byte> body, CancellationToken ct)
    {
        var chunks = db.JobLogChunks.AsNoTracking().Where(c => c.JobId == jobId);
        var last = await chunks.OrderByDescending(c => c.Offset).Select(c => new { c.Offset, c.Length }).FirstOrDefaultAsync(ct);
        var end = last is null ? 0 : last.Offset + last.Length;
        if (offset != end)
        {
            var isRetry = offset < end && await chunks.AnyAsync(c => c.Offset == offset, ct);
            return new(isRetry ? LogAppendStatus.Duplicate : LogAppendStatus.WrongOffset, end);
        }

        var cap = options.Value.MaxLogBytesPerJob;
        var stored = await chunks.SumAsync(c => (long)c.StoredBytes, ct);
        var text = KeepWithinCap(body.Span, stored, cap);
        db.JobLogChunks.Add(new JobLogChunk
        {
            JobId = jobId,
            Offset = offset,
            Length = body.Length,
            Text = text,
            StoredBytes = Encoding.UTF8.GetByteCount(text),
            At = clock.GetUtcNow(),
        });
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException ex) when (ex.IsUniqueViolation(JobLogChunkEntityTypeConfiguration.OffsetIndex))
        {
            // A concurrent retry of the same chunk won the race; the transaction is void, nothing to keep.
            db.ChangeTracker.Clear();
            return new(LogAppendStatus.Duplicate, offset + body.Length);
        }
        return new(LogAppendStatus.Appended, offset + body.Length);
    }

    /// <summary>
    /// The text to keep of a chunk, given what the job already stored. Past the cap we keep an
    /// empty chunk so offsets stay continuous and retries are still recognised.
    /// </summary>
    public static string KeepWithinCap(ReadOnlySpan<byte> body, long alreadyStored, long cap)
    {
        if (alreadyStored >= cap) return "";
        if (alreadyStored + body.Length <= cap) return Encoding.UTF8.GetString(body);
        var room = (int)(cap - alreadyStored);
        // Cut on a character boundary: skip back over UTF-8 continuation bytes (10xxxxxx).
        while (room > 0 && room < body.Length && (body[room] & 0xC0) == 0x80) room--;
        return Encoding.UTF8.GetString(body[..room]) + TruncationNote(cap);
    }

    /// <summary>The whole log as stored, in order (the raw download, and a finished job's page).</summary>
    public async Task<string> ReadAllAsync(Guid jobId, CancellationToken ct) =>
        string.Concat(await db.JobLogChunks.AsNoTracking()
            .Where(c => c.JobId == jobId)
            .OrderBy(c => c.Offset)
            .Select(c => c.Text)
            .ToListAsync(ct));

    public Task<List<JobLogChunk>> ReadFromAsync(Guid jobId, long fromOffset, int maxChunks, CancellationToken ct) =>
        db.JobLogChunks.AsNoTracking()
            .Where(c => c.JobId == jobId && c.Offset >= fromOffset)
            .OrderBy(c => c.Offset)
            .Take(maxChunks)
            .ToListAsync(ct);
}
