using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using EphemeralCI.Contracts.Runner;
using EphemeralCI.Intake.Terminals;
using EphemeralCI.IntegrationTests.Infrastructure;
using StackExchange.Redis;
using Xunit;

namespace EphemeralCI.IntegrationTests.Intake;

/// <summary>
/// A terminal session split across two intake replicas on the real Redis: the agent's WebSocket held by one, eci's by the other,
/// joined only by <see cref="RedisTerminalBus"/> (each replica its own connection). The two sockets are real WebSockets over loopback
/// TCP; this test speaks the agent's and eci's side of them.
/// </summary>
public sealed class RedisTerminalBusTests
{
    [Fact]
    public async Task A_session_crosses_replicas_input_output_and_exit()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var ct = timeout.Token;
        await using var replicaA = await ConnectionMultiplexer.ConnectAsync(RealServices.Redis);
        await using var replicaB = await ConnectionMultiplexer.ConnectAsync(RealServices.Redis);
        var session = Guid.NewGuid();

        var (agentAtIntake, agent) = await SocketPairAsync();
        var (clientAtIntake, client) = await SocketPairAsync();
        // The agent attaches first (to A), eci later (to B): the hello/attach handshake must still meet.
        var agentEnd = TerminalBridge.RunAgentAsync(agentAtIntake, session, new RedisTerminalBus(replicaA), ct);
        var clientEnd = TerminalBridge.RunClientAsync(clientAtIntake, session, 90, 30, new RedisTerminalBus(replicaB),
            _ => Task.FromResult<TerminalControl?>(null), c => Task.Delay(Timeout.Infinite, c), ct);

        // The agent is told the window size of eci's terminal.
        var (type, bytes) = await ReceiveAsync(agent, ct);
        Assert.Equal(WebSocketMessageType.Text, type);
        var attach = JsonSerializer.Deserialize<TerminalControl>(bytes, JsonSerializerOptions.Web)!;
        Assert.Equal((TerminalMessages.Attach, 90, 30), (attach.Type, attach.Cols, attach.Rows));

        // Output one way, keystrokes the other.
        await agent.SendAsync("prompt$ "u8.ToArray(), WebSocketMessageType.Binary, true, ct);
        Assert.Equal("prompt$ ", Encoding.UTF8.GetString((await ReceiveAsync(client, ct)).Bytes));
        await client.SendAsync("ls\r"u8.ToArray(), WebSocketMessageType.Binary, true, ct);
        // A second attach may come first (eci's end answers every hello, and says it once on its own): the agent takes it as a resize.
        var typed = await ReceiveAsync(agent, ct);
        while (typed.Type == WebSocketMessageType.Text && Encoding.UTF8.GetString(typed.Bytes).Contains("\"attach\"")) typed = await ReceiveAsync(agent, ct);
        Assert.Equal((WebSocketMessageType.Binary, "ls\r"), (typed.Type, Encoding.UTF8.GetString(typed.Bytes)));

        // The shell's exit reaches eci, then its socket closes.
        await agent.SendAsync(JsonSerializer.SerializeToUtf8Bytes(new TerminalControl(TerminalMessages.Exit, Code: 7), JsonSerializerOptions.Web),
            WebSocketMessageType.Text, true, ct);
        var exit = await ReceiveAsync(client, ct);
        Assert.Equal(WebSocketMessageType.Text, exit.Type);
        var control = JsonSerializer.Deserialize<TerminalControl>(exit.Bytes, JsonSerializerOptions.Web)!;
        Assert.Equal((TerminalMessages.Exit, 7), (control.Type, control.Code));
        Assert.Equal(WebSocketMessageType.Close, (await ReceiveAsync(client, ct)).Type);
        await client.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", ct); // eci answers the close, so the bridge ends now
        await clientEnd.WaitAsync(ct);

        await agent.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "done", ct);
        await agentEnd.WaitAsync(ct);
    }

    private static async Task<(WebSocketMessageType Type, byte[] Bytes)> ReceiveAsync(WebSocket socket, CancellationToken ct)
    {
        var buffer = new byte[16 * 1024];
        var result = await socket.ReceiveAsync(buffer, ct);
        return (result.MessageType, buffer.AsSpan(0, result.Count).ToArray());
    }

    /// <summary>The intake's (server) end and the other party's (client) end of one WebSocket over loopback TCP.</summary>
    private static async Task<(WebSocket Server, WebSocket Client)> SocketPairAsync()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            var connecting = new TcpClient();
            var connect = connecting.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
            var accepted = await listener.AcceptTcpClientAsync();
            await connect;
            return (WebSocket.CreateFromStream(accepted.GetStream(), new WebSocketCreationOptions { IsServer = true }),
                    WebSocket.CreateFromStream(connecting.GetStream(), new WebSocketCreationOptions { IsServer = false }));
        }
        finally { listener.Stop(); }
    }
}
