using System.Collections.Concurrent;
using System.Threading.Channels;
using StackExchange.Redis;

namespace EphemeralCI.Intake.Terminals;

/// <summary>Which way a terminal message travels between the two WebSockets of a session.</summary>
public enum TerminalLeg
{
    /// <summary>From eci to the runner: keystrokes, resizes, attach.</summary>
    ToRunner,
    /// <summary>From the runner to eci: output, the shell's exit, the agent's hello and ready.</summary>
    ToClient,
}

/// <summary>
/// Carries terminal messages between the replica that holds eci's WebSocket and the one that holds the agent's (they may
/// differ): Redis pub/sub across replicas (<see cref="RedisTerminalBus"/>), in process for the embedded server. Pub/sub,
/// not streams: keystrokes are worth nothing late, the job's log keeps the record, and neither end must read a backlog.
/// Delivery to a subscriber is in order; a message published while nobody listens is gone, which
/// <see cref="TerminalBridge"/>'s hello/attach/ready handshake allows for.
/// </summary>
public interface ITerminalBus
{
    Task<TerminalSubscription> SubscribeAsync(Guid sessionId, TerminalLeg leg, CancellationToken ct);
    Task PublishAsync(Guid sessionId, TerminalLeg leg, ReadOnlyMemory<byte> message);
}

/// <summary>Messages of one leg, in the order they were published, until disposed.</summary>
public sealed class TerminalSubscription(ChannelReader<byte[]> messages, Func<Task> unsubscribe) : IAsyncDisposable
{
    public ChannelReader<byte[]> Messages { get; } = messages;

    public async ValueTask DisposeAsync() => await unsubscribe();
}

public sealed class InProcessTerminalBus : ITerminalBus
{
    private readonly ConcurrentDictionary<(Guid, TerminalLeg), ConcurrentDictionary<Channel<byte[]>, byte>> _subscribers = new();

    public Task<TerminalSubscription> SubscribeAsync(Guid sessionId, TerminalLeg leg, CancellationToken ct)
    {
        var channel = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });
        // Under one lock with the unsubscribe below: a reconnecting agent subscribes while its old connection unsubscribes,
        // and the old one must not drop the set the new one was just added to.
        ConcurrentDictionary<Channel<byte[]>, byte> set;
        lock (_subscribers)
        {
            set = _subscribers.GetOrAdd((sessionId, leg), _ => new());
            set.TryAdd(channel, 0);
        }
        return Task.FromResult(new TerminalSubscription(channel.Reader, () =>
        {
            lock (_subscribers)
            {
                set.TryRemove(channel, out _);
                if (set.IsEmpty) _subscribers.TryRemove(new KeyValuePair<(Guid, TerminalLeg), ConcurrentDictionary<Channel<byte[]>, byte>>((sessionId, leg), set));
            }
            channel.Writer.TryComplete();
            return Task.CompletedTask;
        }));
    }

    public Task PublishAsync(Guid sessionId, TerminalLeg leg, ReadOnlyMemory<byte> message)
    {
        if (_subscribers.TryGetValue((sessionId, leg), out var set))
        {
            var copy = message.ToArray();
            foreach (var channel in set.Keys) channel.Writer.TryWrite(copy);
        }
        return Task.CompletedTask;
    }
}

public sealed class RedisTerminalBus(IConnectionMultiplexer redis) : ITerminalBus
{
    public static RedisChannel ChannelFor(Guid sessionId, TerminalLeg leg) =>
        RedisChannel.Literal($"ephemeralci:intake:terminal:{sessionId:N}:{(leg == TerminalLeg.ToRunner ? "in" : "out")}");

    public async Task<TerminalSubscription> SubscribeAsync(Guid sessionId, TerminalLeg leg, CancellationToken ct)
    {
        // A ChannelMessageQueue keeps the publisher's order (a handler callback would not).
        var queue = await redis.GetSubscriber().SubscribeAsync(ChannelFor(sessionId, leg));
        var channel = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var pump = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var message = await queue.ReadAsync();
                    channel.Writer.TryWrite((byte[])message.Message!);
                }
            }
            catch (ChannelClosedException) { }
            finally { channel.Writer.TryComplete(); }
        }, CancellationToken.None);
        return new TerminalSubscription(channel.Reader, async () =>
        {
            try { await queue.UnsubscribeAsync(); }
            catch (Exception ex) when (ex is RedisException or TimeoutException) { /* connection gone: nothing to undo */ }
            await pump;
        });
    }

    public Task PublishAsync(Guid sessionId, TerminalLeg leg, ReadOnlyMemory<byte> message) =>
        redis.GetSubscriber().PublishAsync(ChannelFor(sessionId, leg), message);
}
