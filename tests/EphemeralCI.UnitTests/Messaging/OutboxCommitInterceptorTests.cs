using EphemeralCI.Messaging;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Xunit;

namespace EphemeralCI.UnitTests.Messaging;

/// <summary>The dispatcher is woken by the commit of staged messages, not by hand, and not before other connections can see them.</summary>
public sealed class OutboxCommitInterceptorTests : IDisposable
{
    private readonly SqliteConnection _connection = new("Data Source=:memory:");
    private readonly OutboxSignal<Db> _signal = new();

    public OutboxCommitInterceptorTests()
    {
        _connection.Open();
        using var db = NewDb();
        db.Database.EnsureCreated();
    }

    public void Dispose() => _connection.Dispose();

    private Db NewDb() => new(new DbContextOptionsBuilder<Db>().UseSqlite(_connection).AddInterceptors(new OutboxCommitInterceptor<Db>(_signal)).Options);

    private Task<bool> SignalledAsync() => _signal.WaitAsync(TimeSpan.Zero, CancellationToken.None);

    [Fact]
    public async Task A_save_that_staged_a_message_wakes_the_dispatcher_once()
    {
        await using var db = NewDb();
        db.AddToOutbox(new Ping(1));
        await db.SaveChangesAsync();
        Assert.True(await SignalledAsync());
        Assert.False(await SignalledAsync());
    }

    [Fact]
    public async Task A_save_without_messages_wakes_nobody_nor_does_marking_a_row_sent()
    {
        await using var db = NewDb();
        db.AddToOutbox(new Ping(1));
        await db.SaveChangesAsync();
        await SignalledAsync();

        db.OutboxMessages.Single().SentAt = DateTimeOffset.UtcNow; // what the dispatcher itself does
        await db.SaveChangesAsync();
        Assert.False(await SignalledAsync());
    }

    [Fact]
    public async Task Inside_the_callers_transaction_only_its_commit_wakes_the_dispatcher()
    {
        await using var db = NewDb();
        await using (var tx = await db.Database.BeginTransactionAsync())
        {
            db.AddToOutbox(new Ping(1));
            await db.SaveChangesAsync();
            Assert.False(await SignalledAsync());
            await tx.CommitAsync();
        }
        Assert.True(await SignalledAsync());
    }

    [Fact]
    public async Task A_rolled_back_transaction_wakes_nobody()
    {
        await using var db = NewDb();
        await using (var tx = await db.Database.BeginTransactionAsync())
        {
            db.AddToOutbox(new Ping(1));
            await db.SaveChangesAsync();
            await tx.RollbackAsync();
        }
        Assert.False(await SignalledAsync());
    }

    public sealed record Ping(int N);

    public sealed class Db(DbContextOptions<Db> options) : DbContext(options), IOutboxDbContext
    {
        public DbSet<OutboxMessage> OutboxMessages => Set<OutboxMessage>();
        protected override void OnModelCreating(ModelBuilder b) => b.ApplyConfiguration(new OutboxMessageConfiguration());
    }
}
