using System.Reflection;
using EphemeralCI.Messaging;
using MassTransit;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Xunit;

namespace EphemeralCI.UnitTests.Messaging;

/// <summary>
/// A publish that keeps failing (broker down, message returned unroutable) is retried after a growing
/// back-off, however often commits elsewhere signal the dispatcher.
/// </summary>
public sealed class OutboxDispatcherTests : IAsyncLifetime
{
    private readonly SqliteConnection _connection = new("Data Source=:memory:");
    private readonly SleepCountingClock _clock = new();
    private readonly OutboxSignal<OutboxTestDb> _signal = new();
    private readonly FlakyBus _bus = FlakyBus.Create();
    private ServiceProvider _services = null!;

    public async Task InitializeAsync()
    {
        await _connection.OpenAsync(); // an in-memory database lives as long as its connection
        _services = new ServiceCollection()
            .AddDbContext<OutboxTestDb>(o => o.UseSqlite(_connection))
            .BuildServiceProvider();
        await WithDbAsync(db => db.Database.EnsureCreatedAsync());
    }

    public async Task DisposeAsync()
    {
        await _services.DisposeAsync();
        await _connection.DisposeAsync();
    }

    [Fact]
    public async Task A_failing_row_waits_out_a_growing_back_off_however_often_commits_signal()
    {
        _bus.Fails = true;
        await AddRowAsync();
        using var dispatcher = new OutboxDispatcher<OutboxTestDb>(_services.GetRequiredService<IServiceScopeFactory>(), _bus.Bus, _signal, Microsoft.Extensions.Options.Options.Create(new OutboxOptions()), _clock,
            NullLogger<OutboxDispatcher<OutboxTestDb>>.Instance);
        await dispatcher.StartAsync(CancellationToken.None);
        try
        {
            await EventuallyAsync(() => Task.FromResult(_bus.Attempts > 0));

            // Commits elsewhere keep signalling: none of them retries the row before its back-off (1 s).
            await SignalManyAsync();
            Assert.Equal(1, _bus.Attempts);
            await SleepsAsync(1);
            _clock.Advance(TimeSpan.FromSeconds(1));
            await SleepsAsync(2);
            Assert.Equal(2, _bus.Attempts);

            // The back-off doubles: 1 s more is not enough now, 2 s is.
            _clock.Advance(TimeSpan.FromSeconds(1));
            await SignalManyAsync();
            Assert.Equal(2, _bus.Attempts);
            _clock.Advance(TimeSpan.FromSeconds(1));
            await SleepsAsync(3);
            Assert.Equal(3, _bus.Attempts);

            // The broker is back: the row goes out after this back-off (4 s)...
            _bus.Fails = false;
            _clock.Advance(TimeSpan.FromSeconds(4));
            await EventuallyAsync(() => WithDbAsync(db => db.OutboxMessages.AllAsync(m => m.SentAt != null)));

            // ...and a success resets the back-off: the next failing row is retried after 1 s again, not 8 s.
            _bus.Fails = true;
            await AddRowAsync();
            _signal.Notify();
            await SleepsAsync(4);
            _clock.Advance(TimeSpan.FromSeconds(1));
            await SleepsAsync(5);
            Assert.Equal(6, _bus.Attempts);
        }
        finally
        {
            await dispatcher.StopAsync(CancellationToken.None);
        }
    }

    private async Task AddRowAsync() => await WithDbAsync(db =>
    {
        db.AddToOutbox(new Ping(Guid.NewGuid()), _clock);
        return db.SaveChangesAsync();
    });

    private async Task<T> WithDbAsync<T>(Func<OutboxTestDb, Task<T>> action)
    {
        await using var scope = _services.CreateAsyncScope();
        return await action(scope.ServiceProvider.GetRequiredService<OutboxTestDb>());
    }

    /// <summary>As a busy service would: a commit every few milliseconds, each notifying the dispatcher.</summary>
    private async Task SignalManyAsync()
    {
        for (var i = 0; i < 20; i++)
        {
            _signal.Notify();
            await Task.Delay(10);
        }
    }

    /// <summary>Until the dispatcher has gone to sleep on its back-off <paramref name="count"/> times in all.</summary>
    private Task SleepsAsync(int count) => EventuallyAsync(() => Task.FromResult(_clock.Sleeps >= count));

    private static async Task EventuallyAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(10);
        }
    }

    public sealed record Ping(Guid Id);

    internal sealed class OutboxTestDb(DbContextOptions<OutboxTestDb> options) : DbContext(options), IOutboxDbContext
    {
        public DbSet<OutboxMessage> OutboxMessages => Set<OutboxMessage>();
        protected override void OnModelCreating(ModelBuilder b) => b.ApplyConfiguration(new OutboxMessageConfiguration());
    }

    /// <summary>Fake time that counts the timers started on it: the dispatcher's back-off is the only one.</summary>
    private sealed class SleepCountingClock() : FakeTimeProvider(DateTimeOffset.UtcNow)
    {
        private int _sleeps;
        public int Sleeps => Volatile.Read(ref _sleeps);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Interlocked.Increment(ref _sleeps);
            return base.CreateTimer(callback, state, dueTime, period);
        }
    }

    /// <summary>A bus whose every publish fails while <see cref="Fails"/> is set, as a returned mandatory publish does.</summary>
    public class FlakyBus : DispatchProxy
    {
        private int _attempts;
        public volatile bool Fails;
        public int Attempts => Volatile.Read(ref _attempts);
        public IBus Bus { get; private set; } = null!;

        public static FlakyBus Create()
        {
            var bus = DispatchProxy.Create<IBus, FlakyBus>();
            var self = (FlakyBus)(object)bus;
            self.Bus = bus;
            return self;
        }

        protected override object? Invoke(MethodInfo? method, object?[]? args)
        {
            if (method?.Name != nameof(IPublishEndpoint.Publish)) throw new NotSupportedException(method?.Name);
            Interlocked.Increment(ref _attempts);
            return Fails ? Task.FromException(new InvalidOperationException("message returned: no route")) : Task.CompletedTask;
        }
    }
}
