using System.Net.WebSockets;
using System.Text.Json;
using System.Threading.Channels;
using EphemeralCI.Contracts.Runner;

namespace EphemeralCI.Intake.Terminals;

/// <summary>
/// Joins eci's WebSocket and the agent's through the <see cref="ITerminalBus"/>, whichever replicas hold them.
/// A bus message is one kind byte (<see cref="Data"/> or <see cref="Control"/>) then the payload.
/// Pub/sub drops what is published before the other side subscribes, so the two ends shake hands: the agent's end
/// publishes <c>hello</c> once subscribed, eci's end answers every hello (and says once on its own) <c>attach</c> with the
/// window size, and the agent's end answers every attach with <c>ready</c>. Whichever end subscribed last, one attach
/// arrives; eci's keystrokes are held until the first ready, so none is typed into the void.
/// </summary>
public static class TerminalBridge
{
    public const byte Data = 0;
    public const byte Control = 1;
    internal const string Hello = "hello";
    internal const string Ready = "ready";
    private const string Gone = "gone";
    /// <summary>Keystrokes held until the runner's end is there; more before it is a client flooding, and closes the socket.</summary>
    public const int MaxHeldInputBytes = 64 * 1024;
    private const int FrameBytes = 16 * 1024;
    /// <summary>How long eci's end waits for eci to answer its close before dropping the connection.</summary>
    private static readonly TimeSpan CloseHandshakeTimeout = TimeSpan.FromSeconds(5);
    private static readonly JsonSerializerOptions Json = JsonSerializerOptions.Web;

    public static byte[] Encode(TerminalControl control) => [Control, .. JsonSerializer.SerializeToUtf8Bytes(control, Json)];

    private static byte[] EncodeData(ReadOnlySpan<byte> bytes) => [Data, .. bytes];

    /// <summary>eci's end. Returns when the shell exited, the session ended (<paramref name="ended"/>) or eci went away.</summary>
    public static async Task RunClientAsync(WebSocket socket, Guid sessionId, int cols, int rows, ITerminalBus bus,
        Func<CancellationToken, Task<TerminalControl?>> ended, Func<CancellationToken, Task> waitForNews, CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        await using var fromRunner = await bus.SubscribeAsync(sessionId, TerminalLeg.ToClient, stop.Token);
        // One loop owns the socket's sending side (its close too); everything it must send or decide arrives here.
        var events = Channel.CreateUnbounded<ClientEvent>();
        var attach = Encode(new TerminalControl(TerminalMessages.Attach, cols, rows));
        await bus.PublishAsync(sessionId, TerminalLeg.ToRunner, attach);

        var busPump = PumpAsync(fromRunner.Messages, m => events.Writer.TryWrite(new(Bus: m)), stop.Token);
        var endWatch = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    if (await ended(stop.Token) is { } end)
                    {
                        events.Writer.TryWrite(new(Local: end));
                        return;
                    }
                    await waitForNews(stop.Token);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // A failed look (a busy database) must not stop the watch: eci would wait for an end that never comes.
                    await Task.Delay(TimeSpan.FromMilliseconds(500), stop.Token);
                }
            }
        }, stop.Token);

        var ready = false;
        var closed = false;
        var held = new List<byte[]>();
        var heldBytes = 0;
        var receive = Task.Run(async () =>
        {
            var buffer = new byte[FrameBytes];
            var refused = false;
            while (!stop.IsCancellationRequested)
            {
                var message = await ReceiveAsync(socket, buffer, stop.Token);
                if (message is null) break;
                // Refused: what eci sends until it answers the close is read and dropped, so its answer is seen.
                if (refused) continue;
                var (type, bytes, tooLong) = message.Value;
                if (type == WebSocketMessageType.Binary)
                {
                    events.Writer.TryWrite(new(Input: EncodeData(bytes)));
                    continue;
                }
                var control = tooLong ? null : Parse(bytes);
                // eci may say one thing: its window's size. Anything else is refused by closing (by the loop that sends).
                if (control is not { Type: TerminalMessages.Resize } || !TerminalMessages.ValidSize(control.Cols, control.Rows))
                {
                    events.Writer.TryWrite(new(Refuse: tooLong
                        ? (WebSocketCloseStatus.MessageTooBig, "control message too long")
                        : (WebSocketCloseStatus.PolicyViolation, "only binary input and valid resize messages")));
                    refused = true;
                    continue;
                }
                attach = Encode(new TerminalControl(TerminalMessages.Attach, control.Cols, control.Rows));
                events.Writer.TryWrite(new(Input: Encode(new TerminalControl(TerminalMessages.Resize, control.Cols, control.Rows))));
            }
            events.Writer.TryWrite(new(Local: new TerminalControl(Gone)));
        }, stop.Token);

        try
        {
            await foreach (var (fromBus, input, local, refuse) in events.Reader.ReadAllAsync(stop.Token))
            {
                if (local is { Type: Gone }) return;
                if (refuse is { } why)
                {
                    await socket.CloseOutputAsync(why.Status, why.Reason, stop.Token);
                    closed = true;
                    return;
                }
                if (local is not null)
                {
                    await SendControlAsync(socket, local, stop.Token);
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "session ended", stop.Token);
                    closed = true;
                    return;
                }
                if (input is not null)
                {
                    var message = input;
                    // A keystroke or a resize of eci's: held until the runner's end is there.
                    if (ready) { await bus.PublishAsync(sessionId, TerminalLeg.ToRunner, message); continue; }
                    heldBytes += message.Length;
                    if (heldBytes > MaxHeldInputBytes)
                    {
                        await socket.CloseOutputAsync(WebSocketCloseStatus.MessageTooBig, "too much input before the runner's shell was ready", stop.Token);
                        closed = true;
                        return;
                    }
                    held.Add(message);
                    continue;
                }
                var fromRunnerMessage = fromBus!;
                if (fromRunnerMessage[0] == Data)
                {
                    await socket.SendAsync(fromRunnerMessage.AsMemory(1), WebSocketMessageType.Binary, true, stop.Token);
                    continue;
                }
                var control = Parse(fromRunnerMessage.AsSpan(1));
                switch (control?.Type)
                {
                    case Hello:
                        await bus.PublishAsync(sessionId, TerminalLeg.ToRunner, attach);
                        break;
                    case Ready when !ready:
                        ready = true;
                        foreach (var early in held) await bus.PublishAsync(sessionId, TerminalLeg.ToRunner, early);
                        held.Clear();
                        break;
                    case TerminalMessages.Exit:
                        await SendControlAsync(socket, new TerminalControl(TerminalMessages.Exit, Code: control.Code), stop.Token);
                        await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "the shell exited", stop.Token);
                        closed = true;
                        return;
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
            // eci went away or the request ended: the session stays until deleted or idle.
        }
        finally
        {
            // Cancelling the pending receive aborts the socket, and an abort may drop what is still unsent: the exit or end just
            // written, and the close (with its reason, when eci's input was refused). So after a close of ours, let eci answer it
            // (the receive loop ends on its close) first; what eci sends meanwhile is dropped, not queued.
            if (closed)
            {
                events.Writer.TryComplete();
                await Quietly(receive.WaitAsync(CloseHandshakeTimeout, CancellationToken.None));
            }
            await stop.CancelAsync();
            await Task.WhenAll(Quietly(busPump), Quietly(endWatch), Quietly(receive));
        }
    }

    /// <summary>
    /// The agent's end. Output and the shell's exit go to eci's end; attach, keystrokes and resizes come from it.
    /// The agent is trusted with its own output only: of its control messages only <c>exit</c> (with a code) passes.
    /// </summary>
    public static async Task RunAgentAsync(WebSocket socket, Guid sessionId, ITerminalBus bus, CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        await using var fromClient = await bus.SubscribeAsync(sessionId, TerminalLeg.ToRunner, stop.Token);
        await bus.PublishAsync(sessionId, TerminalLeg.ToClient, Encode(new TerminalControl(Hello)));

        var forward = Task.Run(async () =>
        {
            await foreach (var message in fromClient.Messages.ReadAllAsync(stop.Token))
            {
                if (message[0] == Data)
                {
                    await socket.SendAsync(message.AsMemory(1), WebSocketMessageType.Binary, true, stop.Token);
                    continue;
                }
                await socket.SendAsync(message.AsMemory(1), WebSocketMessageType.Text, true, stop.Token);
                if (Parse(message.AsSpan(1)) is { Type: TerminalMessages.Attach })
                    await bus.PublishAsync(sessionId, TerminalLeg.ToClient, Encode(new TerminalControl(Ready)));
            }
        }, stop.Token);

        try
        {
            var buffer = new byte[FrameBytes];
            while (true)
            {
                var message = await ReceiveAsync(socket, buffer, stop.Token);
                if (message is null) return;
                var (type, bytes, tooLong) = message.Value;
                if (tooLong)
                {
                    await socket.CloseOutputAsync(WebSocketCloseStatus.MessageTooBig, "control message too long", stop.Token);
                    return;
                }
                if (type == WebSocketMessageType.Binary)
                {
                    await bus.PublishAsync(sessionId, TerminalLeg.ToClient, EncodeData(bytes));
                    continue;
                }
                if (Parse(bytes) is { Type: TerminalMessages.Exit, Code: { } code })
                {
                    await bus.PublishAsync(sessionId, TerminalLeg.ToClient, Encode(new TerminalControl(TerminalMessages.Exit, Code: code)));
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
            // The agent reconnects if its shell still runs.
        }
        finally
        {
            await stop.CancelAsync();
            await Quietly(forward);
        }
    }

    private static async Task PumpAsync(ChannelReader<byte[]> reader, Func<byte[], bool> write, CancellationToken ct)
    {
        await foreach (var message in reader.ReadAllAsync(ct)) if (message.Length > 0) write(message);
    }

    /// <summary>
    /// One whole message (text control messages are bounded; binary is passed on frame by frame), or null once closed. A text message
    /// longer than a control message is not read further: <c>TooLong</c>, and the caller closes the socket.
    /// </summary>
    private static async Task<(WebSocketMessageType Type, byte[] Bytes, bool TooLong)?> ReceiveAsync(WebSocket socket, byte[] buffer, CancellationToken ct)
    {
        var result = await socket.ReceiveAsync(buffer, ct);
        if (result.MessageType == WebSocketMessageType.Close) return null;
        if (result.MessageType == WebSocketMessageType.Binary) return (result.MessageType, buffer.AsSpan(0, result.Count).ToArray(), false);
        var text = new MemoryStream();
        text.Write(buffer, 0, result.Count);
        while (!result.EndOfMessage)
        {
            if (text.Length > TerminalMessages.MaxControlBytes) return (WebSocketMessageType.Text, [], true);
            result = await socket.ReceiveAsync(buffer, ct);
            text.Write(buffer, 0, result.Count);
        }
        return (WebSocketMessageType.Text, text.ToArray(), false);
    }

    /// <summary>What eci's end's sending loop acts on: a bus message, eci's input to pass on, an end of its own, or a refusal of eci's input.</summary>
    private readonly record struct ClientEvent(byte[]? Bus = null, byte[]? Input = null, TerminalControl? Local = null,
        (WebSocketCloseStatus Status, string Reason)? Refuse = null);

    private static TerminalControl? Parse(ReadOnlySpan<byte> json)
    {
        if (json.Length > TerminalMessages.MaxControlBytes) return null;
        try { return JsonSerializer.Deserialize<TerminalControl>(json, Json); }
        catch (JsonException) { return null; }
    }

    private static Task SendControlAsync(WebSocket socket, TerminalControl control, CancellationToken ct) =>
        socket.SendAsync(JsonSerializer.SerializeToUtf8Bytes(control, Json), WebSocketMessageType.Text, true, ct);

    private static async Task Quietly(Task task)
    {
        try { await task; }
        catch (Exception) { /* the bridge is over; its loops end however they end */ }
    }
}
