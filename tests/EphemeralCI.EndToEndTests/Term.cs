using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Xunit;

namespace EphemeralCI.EndToEndTests;

/// <summary>The client end of a session's terminal, as eci speaks it.</summary>
internal sealed class Term : IDisposable
{
    private readonly ClientWebSocket _socket = new();
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<int> _exit = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _reader = Task.CompletedTask;

    public string Output { get { lock (_output) return _output.ToString(); } }

    public static Uri UriFor(ServerFixture fx, Guid id, int cols, int rows) =>
        new($"ws://{fx.BaseAddress.Authority}/api/v1/sessions/{id}/terminal?cols={cols}&rows={rows}");

    public static async Task<Term> ConnectAsync(ServerFixture fx, Guid id, int cols, int rows)
    {
        var term = new Term();
        term._socket.Options.SetRequestHeader("Authorization", fx.Intake.DefaultRequestHeaders.Authorization!.ToString());
        await term._socket.ConnectAsync(UriFor(fx, id, cols, rows), CancellationToken.None);
        term._reader = term.ReadAsync();
        return term;
    }

    private async Task ReadAsync()
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var result = await _socket.ReceiveAsync(buffer, CancellationToken.None);
            if (result.MessageType == WebSocketMessageType.Close) { _exit.TrySetException(new Exception("closed without exit: " + Output)); return; }
            if (result.MessageType == WebSocketMessageType.Binary) { lock (_output) _output.Append(Encoding.UTF8.GetString(buffer, 0, result.Count)); continue; }
            var control = JsonDocument.Parse(buffer.AsMemory(0, result.Count)).RootElement;
            if (control.GetProperty("type").GetString() == "exit") _exit.TrySetResult(control.GetProperty("code").GetInt32());
            else _exit.TrySetException(new Exception("session ended: " + control));
        }
    }

    public Task TypeAsync(string keys) => _socket.SendAsync(Encoding.UTF8.GetBytes(keys), WebSocketMessageType.Binary, true, CancellationToken.None);

    public Task ResizeAsync(int cols, int rows) =>
        _socket.SendAsync(JsonSerializer.SerializeToUtf8Bytes(new { type = "resize", cols, rows }), WebSocketMessageType.Text, true, CancellationToken.None);

    public async Task WaitForAsync(string text)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!Output.Contains(text))
        {
            Assert.True(DateTime.UtcNow < deadline, $"'{text}' never appeared in the terminal:\n{Output}");
            Assert.False(_reader.IsCompleted, $"terminal closed ({_reader.Exception?.GetBaseException().Message ?? _exit.Task.Exception?.GetBaseException().Message}):\n" + Output);
            await Task.Delay(50);
        }
    }

    public Task<int> ExitCodeAsync() => _exit.Task.WaitAsync(TimeSpan.FromSeconds(30));

    public void Dispose() => _socket.Dispose();
}
