using System.Diagnostics;
using System.Text.Json;
using EphemeralCI.Persistence;
using MassTransit;
using MassTransit.RabbitMqTransport;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry;

namespace EphemeralCI.Messaging;

/// <summary>
/// Wakes a dispatcher right after a commit instead of waiting for its next poll. One per outbox
/// (<see cref="OutboxSignal{TContext}"/>): in the all-in-one server the intake's and the
/// provisioner's dispatchers share a process, and a shared signal woke whichever waited first.
/// Raised by <see cref="OutboxCommitInterceptor{TContext}"/>, never by hand.
/// </summary>
public class OutboxSignal
{
    private readonly SemaphoreSlim _signal = new(0, 1);

    public void Notify()
    {
        try { _signal.Release(); } catch (SemaphoreFullException) { /* already signalled */ }
    }

    /// <summary>True if notified within <paramref name="timeout"/>.</summary>
    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken ct) => _signal.WaitAsync(timeout, ct);
}

/// <summary>The signal of the outbox in <typeparamref name="TContext"/>.</summary>
public sealed class OutboxSignal<TContext> : OutboxSignal where TContext : DbContext;

/// <summary>Configuration section <c>Messaging:Outbox</c>.</summary>
public sealed class OutboxOptions
{
    public const string Section = "Messaging:Outbox";
    /// <summary>How long a sent row is kept (to see what went out) before it is deleted.</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(1);
    /// <summary>How often sent rows older than <see cref="Retention"/> are deleted.</summary>
    public TimeSpan CleanupInterval { get; set; } = TimeSpan.FromMinutes(10);
}

/// <summary>
/// Publishes committed outbox rows in order, at least once; several replicas on one Postgres database
/// share the work without sending a row twice (see <see cref="DispatchBatchAsync"/>). A broker that is down only delays
/// delivery: a failed publish is retried on the next pass and the row stays until it is sent.
/// </summary>
public sealed class OutboxDispatcher<TContext>(
    IServiceScopeFactory scopes,
    IBus bus,
    OutboxSignal<TContext> signal,
    IOptions<OutboxOptions> options,
    TimeProvider clock,
    ILogger<OutboxDispatcher<TContext>> logger) : BackgroundService
    where TContext : DbContext, IOutboxDbContext
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromSeconds(10);
    // After a failed pass (broker down, a mandatory publish returned unroutable, database unavailable)
    // the next one waits this long, doubling each time up to the cap, and back to none after a success.
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromSeconds(1);
    // The cap is also how late jobs committed during an outage go out once the broker is back.
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(10);
    private const int BatchSize = 100;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        RegisterBacklogGauge();
        // Polling is not a job's work: no root trace per pass (the Aspire dashboard drowned in them).
        // A row staged by traced work (a job's request or consumer) is published in that trace again (PublishAsync).
        using var quiet = SuppressInstrumentationScope.Begin();
        await WaitForReceiveEndpointsAsync(stoppingToken);
        TimeSpan? retryDelay = null; // set while passes fail
        var nextCleanup = clock.GetUtcNow();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (clock.GetUtcNow() >= nextCleanup)
                {
                    nextCleanup = clock.GetUtcNow() + options.Value.CleanupInterval;
                    await TryDeleteSentAsync(stoppingToken);
                }
                var sent = await DispatchBatchAsync(stoppingToken);
                retryDelay = null;
                if (sent == BatchSize) continue;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // Database or broker unavailable: keep the rows, try again after the back-off.
                retryDelay = retryDelay is { } previous ? TimeSpan.FromTicks(Math.Min(previous.Ticks * 2, MaxRetryDelay.Ticks)) : FirstRetryDelay;
                logger.LogWarning(ex, "Outbox dispatch failed; retrying in {RetryDelay}", retryDelay);
            }
            try
            {
                // A failed row holds back every row after it (order), so no commit's signal can make the
                // next pass succeed sooner: wait the back-off out whatever is signalled, or every commit
                // elsewhere would retry the failing row at once. After a success a signal wakes us at once.
                if (retryDelay is { } delay) await Task.Delay(delay, clock, stoppingToken);
                else await signal.WaitAsync(PollInterval, stoppingToken);
            }
            catch (OperationCanceledException) { return; }
        }
    }

    private void RegisterBacklogGauge()
    {
        var gauge = new DatabaseGauge<TContext, long>(scopes, clock, db => [db.OutboxMessages.Count(m => m.SentAt == null)]);
        OutboxTelemetry.Register(ModuleName, () => gauge.Read() is [var count] ? count : null);
    }

    /// <summary>"intake" for IntakeDbContext, "provisioner" for ProvisionerDbContext…</summary>
    internal static string ModuleName => typeof(TContext).Name.Replace("DbContext", "", StringComparison.Ordinal).ToLowerInvariant();

    /// <summary>
    /// The in-memory transport drops a message published before the consumers' queues exist (RabbitMQ
    /// refuses it: we publish mandatory), and rows written at start-up would go out at once: so the
    /// first pass waits for the bus to be up — bounded, as a broker that is down only delays delivery.
    /// </summary>
    private async Task WaitForReceiveEndpointsAsync(CancellationToken ct)
    {
        if (bus is not IBusControl control) return;
        try
        {
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
            bounded.CancelAfter(TimeSpan.FromSeconds(30));
            await control.WaitForHealthStatus(BusHealthStatus.Healthy, bounded.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            logger.LogWarning("The bus is not healthy after 30 s; dispatching the outbox anyway");
        }
    }

    /// <summary>
    /// One batch: the oldest unsent rows, published in order. On Postgres the rows are claimed in a
    /// transaction with <c>FOR UPDATE SKIP LOCKED</c>, so dispatchers of several replicas on one
    /// database each take other rows and none is sent twice (a dispatcher that dies mid-batch leaves
    /// its rows unsent, to be sent again under the same message ids). SQLite is owned by one process
    /// (the all-in-one server) and its transactions lock the whole database, so there the rows are
    /// read and marked without one.
    /// </summary>
    internal async Task<int> DispatchBatchAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<TContext>();
        if (!IsPostgres(db)) return await PublishAsync(db, await PendingAsync(db, locked: false, ct), ct);
        return await db.Database.CreateExecutionStrategy().ExecuteAsync(async () =>
        {
            db.ChangeTracker.Clear();
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            try
            {
                return await PublishAsync(db, await PendingAsync(db, locked: true, ct), ct);
            }
            finally
            {
                // Also after a failed publish: its attempt count is kept, and the rows before it stay sent.
                await tx.CommitAsync(CancellationToken.None);
            }
        });
    }

    private static bool IsPostgres(DbContext db) => db.Database.ProviderName?.Contains("Npgsql", StringComparison.Ordinal) == true;

    private static async Task<List<OutboxMessage>> PendingAsync(TContext db, bool locked, CancellationToken ct)
    {
        if (!locked)
        {
            return await db.OutboxMessages.Where(m => m.SentAt == null).OrderBy(m => m.Id).Take(BatchSize).ToListAsync(ct);
        }
        // Only names from the model and a constant go into the text: nothing from outside.
        var (table, id, sentAt) = Names(db);
        var sql = $"SELECT * FROM {table} WHERE {sentAt} IS NULL ORDER BY {id} LIMIT {BatchSize} FOR UPDATE SKIP LOCKED";
        return await db.OutboxMessages.FromSqlRaw(sql).ToListAsync(ct);
    }

    /// <summary>The outbox table's and columns' names as the context maps them (naming conventions differ by module).</summary>
    private static (string Table, string Id, string SentAt) Names(DbContext db)
    {
        var entity = db.Model.FindEntityType(typeof(OutboxMessage))!;
        var store = StoreObjectIdentifier.Table(entity.GetTableName()!, entity.GetSchema());
        string Quote(string name) => "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
        var table = entity.GetSchema() is { } schema ? $"{Quote(schema)}.{Quote(entity.GetTableName()!)}" : Quote(entity.GetTableName()!);
        return (table, Quote(entity.FindProperty(nameof(OutboxMessage.Id))!.GetColumnName(store)!),
            Quote(entity.FindProperty(nameof(OutboxMessage.SentAt))!.GetColumnName(store)!));
    }

    private async Task<int> PublishAsync(TContext db, List<OutboxMessage> pending, CancellationToken ct)
    {
        var sent = 0;
        foreach (var row in pending)
        {
            var type = Type.GetType(row.MessageType);
            if (type is null)
            {
                row.Attempts++;
                row.LastError = "unknown message type";
                logger.LogError("Outbox row {Id} has unknown type {Type}", row.Id, row.MessageType);
                continue;
            }
            var message = JsonSerializer.Deserialize(row.Body, type, Outbox.Json)!;
            // The loop runs with instrumentation suppressed; a row staged by traced work is published in that trace again.
            // MassTransit's send span, and the trace context it puts in the headers, hang under this one.
            using var span = JobTrace.Continue(OutboxTelemetry.Source, row.TraceParent, $"outbox publish {type.Name}", ActivityKind.Producer);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(PublishTimeout);
            try
            {
                await bus.Publish(message, type, ctx =>
                {
                    ctx.MessageId = row.MessageId;
                    // On RabbitMQ a message no queue is bound for yet (its consumer has never
                    // started on this broker) would be dropped; mandatory makes the broker return
                    // it, the publish throw, and the row wait here for the next pass instead.
                    if (ctx.TryGetPayload<RabbitMqSendContext>(out var rabbit)) rabbit.Mandatory = true;
                }, timeout.Token);
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                row.Attempts++;
                row.LastError = ex.Message.Length > 2000 ? ex.Message[..2000] : ex.Message;
                await db.SaveChangesAsync(CancellationToken.None);
                throw; // keep order: nothing after a failed row goes out before it
            }
            row.SentAt = clock.GetUtcNow();
            row.Attempts++;
            row.LastError = null;
            await db.SaveChangesAsync(CancellationToken.None);
            sent++;
        }
        return sent;
    }

    /// <summary>Cleaning up never holds back sending: a failure is logged and tried again at the next interval.</summary>
    private async Task TryDeleteSentAsync(CancellationToken ct)
    {
        try
        {
            await DeleteSentAsync(ct);
        }
        catch (Exception ex) when (!ct.IsCancellationRequested)
        {
            logger.LogWarning(ex, "Deleting sent outbox rows failed; trying again in {Interval}", options.Value.CleanupInterval);
        }
    }

    /// <summary>Deletes rows sent longer ago than the retention (they are kept a while to see what went out). Returns how many.</summary>
    internal async Task<int> DeleteSentAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<TContext>();
        var cutoff = clock.GetUtcNow() - options.Value.Retention;
        var deleted = await db.OutboxMessages.Where(m => m.SentAt != null && m.SentAt < cutoff).ExecuteDeleteAsync(ct);
        if (deleted > 0) logger.LogInformation("Deleted {Count} outbox row(s) sent before {Cutoff:O}", deleted, cutoff);
        return deleted;
    }
}
