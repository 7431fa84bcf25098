using System.Collections.Concurrent;
using System.Reflection;
using EphemeralCI.Messaging;
using EphemeralCI.IntegrationTests.Infrastructure;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit;

namespace EphemeralCI.IntegrationTests.Messaging;

/// <summary>The outbox on real Postgres as replicas share it: no row sent twice, sent rows deleted after the retention.</summary>
public sealed class OutboxReplicaTests : IAsyncLifetime
{
    private ServiceProvider _services = null!;
    private readonly RecordingBus _bus = RecordingBus.Create();

    public async Task InitializeAsync()
    {
        var database = await RealServices.CreateDatabaseAsync("outbox");
        _services = new ServiceCollection()
            .AddDbContext<OutboxDb>(o => o.UseNpgsql(database))
            .BuildServiceProvider();
        await WithDbAsync(db => db.Database.EnsureCreatedAsync());
    }

    public async Task DisposeAsync() => await _services.DisposeAsync();

    private OutboxDispatcher<OutboxDb> Dispatcher(TimeSpan? retention = null) => new(
        _services.GetRequiredService<IServiceScopeFactory>(), _bus.Bus, new OutboxSignal<OutboxDb>(),
        Options.Create(new OutboxOptions { Retention = retention ?? TimeSpan.FromDays(1) }), TimeProvider.System,
        NullLogger<OutboxDispatcher<OutboxDb>>.Instance);

    [Fact]
    public async Task Two_dispatchers_on_one_database_share_the_rows_and_send_none_twice()
    {
        const int rows = 400;
        await WithDbAsync(async db =>
        {
            for (var i = 0; i < rows; i++) db.AddToOutbox(new Ping(i));
            return await db.SaveChangesAsync();
        });
        using var first = Dispatcher();
        using var second = Dispatcher();

        // Both at once, each batch after batch until it finds nothing left.
        async Task<int> DrainAsync(OutboxDispatcher<OutboxDb> dispatcher)
        {
            var total = 0;
            for (int sent; (sent = await dispatcher.DispatchBatchAsync(CancellationToken.None)) > 0;) total += sent;
            return total;
        }
        var counts = await Task.WhenAll(Task.Run(() => DrainAsync(first)), Task.Run(() => DrainAsync(second)));

        Assert.Equal(rows, counts.Sum());
        Assert.All(counts, c => Assert.True(c > 0, $"each dispatcher sent some: {string.Join(" + ", counts)}"));
        var published = _bus.Published.OfType<Ping>().GroupBy(p => p.N).ToList();
        Assert.Equal(rows, published.Count);
        Assert.All(published, g => Assert.Single(g));
        Assert.Equal(0, await WithDbAsync(db => db.OutboxMessages.CountAsync(m => m.SentAt == null)));
    }

    [Fact]
    public async Task Sent_rows_are_deleted_after_the_retention_and_unsent_ones_never()
    {
        var now = DateTimeOffset.UtcNow;
        var (old, recent, unsent) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        await WithDbAsync(async db =>
        {
            db.OutboxMessages.AddRange(
                Row(old, now.AddDays(-3), sentAt: now.AddDays(-2)),
                Row(recent, now.AddDays(-3), sentAt: now.AddHours(-1)),
                Row(unsent, now.AddDays(-3), sentAt: null));
            return await db.SaveChangesAsync();
        });
        using var dispatcher = Dispatcher(TimeSpan.FromDays(1));

        var deleted = await dispatcher.DeleteSentAsync(CancellationToken.None);

        Assert.True(deleted >= 1);
        var left = await WithDbAsync(db => db.OutboxMessages.Select(m => m.MessageId).ToListAsync());
        Assert.DoesNotContain(old, left);
        Assert.Contains(recent, left);
        Assert.Contains(unsent, left);
    }

    private static OutboxMessage Row(Guid id, DateTimeOffset createdAt, DateTimeOffset? sentAt) => new()
    {
        MessageId = id,
        MessageType = typeof(Ping).AssemblyQualifiedName!,
        Body = "{\"n\":-1}",
        CreatedAt = createdAt,
        SentAt = sentAt,
    };

    private async Task<T> WithDbAsync<T>(Func<OutboxDb, Task<T>> action)
    {
        await using var scope = _services.CreateAsyncScope();
        return await action(scope.ServiceProvider.GetRequiredService<OutboxDb>());
    }

    public sealed record Ping(int N);

    internal sealed class OutboxDb(DbContextOptions<OutboxDb> options) : DbContext(options), IOutboxDbContext
    {
        public DbSet<OutboxMessage> OutboxMessages => Set<OutboxMessage>();
        protected override void OnModelCreating(ModelBuilder b) => b.ApplyConfiguration(new OutboxMessageConfiguration());
    }

    /// <summary>A bus that records what it is asked to publish, a moment per message, as a broker round trip takes.</summary>
    public class RecordingBus : DispatchProxy
    {
        public ConcurrentQueue<object> Published { get; } = new();
        public IBus Bus { get; private set; } = null!;

        public static RecordingBus Create()
        {
            var bus = DispatchProxy.Create<IBus, RecordingBus>();
            var self = (RecordingBus)(object)bus;
            self.Bus = bus;
            return self;
        }

        protected override object? Invoke(MethodInfo? method, object?[]? args)
        {
            if (method?.Name != nameof(IPublishEndpoint.Publish)) throw new NotSupportedException(method?.Name);
            Published.Enqueue(args![0]!);
            return Task.Delay(1);
        }
    }
}
